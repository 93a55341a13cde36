import { InMemoryEventStore, InMemoryOpaqueStore } from '../../src/testing.js';
import { describeRepositoryContract } from './repository-contract.js';

describeRepositoryContract('in-memory stores', async () => {
  const opaque = new InMemoryOpaqueStore();
  return { events: new InMemoryEventStore({ opaqueStore: opaque }), opaque };
});
