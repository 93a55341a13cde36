import { InMemoryEventStore, InMemoryOpaqueStore } from '../../src/testing.js';
import { describeStoreContract } from './store-contract.js';
import { describeLifecycleContract } from './lifecycle-contract.js';

describeStoreContract('InMemoryEventStore + InMemoryOpaqueStore', ({ withOpaqueStore = true, ...options }) => {
  const opaque = new InMemoryOpaqueStore();
  const store = new InMemoryEventStore({ ...options, ...(withOpaqueStore && { opaqueStore: opaque }) });
  return { store, opaque };
});

describeLifecycleContract('InMemoryEventStore', () => ({ store: new InMemoryEventStore() }));
