import { STREAM_DELETED_TYPE } from '../../src/index.js';
import { InMemoryEventStore, InMemoryOpaqueStore } from '../../src/testing.js';
import { describeStoreContract } from './store-contract.js';
import { describeLifecycleContract } from './lifecycle-contract.js';

describeStoreContract('InMemoryEventStore + InMemoryOpaqueStore', ({ withOpaqueStore = true, ...options }) => {
  const opaque = new InMemoryOpaqueStore();
  const store = new InMemoryEventStore({ ...options, ...(withOpaqueStore && { opaqueStore: opaque }) });
  return { store, opaque };
});

describeLifecycleContract('InMemoryEventStore', () => ({ store: new InMemoryEventStore() }));

describe('InMemoryEventStore change feed after an erasure', () => {
  it('no longer hands out removed events, hands out the tombstone with its type, and keeps positions', async () => {
    const store = new InMemoryEventStore();
    const data = new TextEncoder().encode('x');
    await store.save('Order/kept', [{ version: 1, data }]);
    await store.save('Order/gone', [
      { version: 1, data, type: 'Placed' },
      { version: 2, data },
    ]);
    const before = store.changesSince(0);
    expect(before.events).toHaveLength(3);
    await store.deleteStream('Order/gone');
    const after = store.changesSince(0);
    expect(after.events.map((e) => [e.aggregateId, e.version, e.type])).toEqual([
      ['Order/kept', 1, undefined],
      ['Order/gone', 3, STREAM_DELETED_TYPE],
    ]);
    // A reader that had seen the first three events goes on with the tombstone alone.
    expect(store.changesSince(before.position).events.map((e) => e.version)).toEqual([3]);
  });
});
