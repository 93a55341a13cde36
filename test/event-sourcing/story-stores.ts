/*
 * The stores the metadata and upcasting suites run on: the in-memory stores and the Cosmos DB stores on one
 * embedded server (started by the suite that calls `storeSuites`). Fresh aggregate ids keep tests apart.
 */
import { afterAll, beforeAll } from '@jest/globals';
import { CosmosEventStore, CosmosOpaqueStore, type AggregateStore, type OpaqueStore, type SnapshotTailStore } from '../../src/index.js';
import { InMemoryEventStore, InMemoryOpaqueStore } from '../../src/testing.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';

export interface StoresUnderTest {
  events: SnapshotTailStore & AggregateStore;
  opaque: OpaqueStore;
}

/** `[name, makeStores]` per store, for `describe.each`; registers the embedded server's start and stop. */
export function storeSuites(): Array<[string, () => StoresUnderTest]> {
  let cosmos: CosmosFixture | undefined;
  beforeAll(async () => {
    cosmos = await startCosmosFixture();
  });
  afterAll(() => cosmos?.close());
  return [
    [
      'in-memory stores',
      () => {
        const opaque = new InMemoryOpaqueStore();
        return { events: new InMemoryEventStore({ opaqueStore: opaque }), opaque };
      },
    ],
    [
      'Cosmos DB stores on the embedded server',
      () => {
        if (!cosmos) throw new Error('the embedded server has not started');
        const opaque = new CosmosOpaqueStore(cosmos.aggregates);
        return { events: new CosmosEventStore(cosmos.events, { opaqueStore: opaque }), opaque };
      },
    ],
  ];
}
