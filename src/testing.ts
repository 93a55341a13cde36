/**
 * nest-cosmos-eventstore/testing: what a consumer's tests and local runs need, kept out of the main entry.
 *
 * - `startEmbeddedCosmos()`: a Cosmos DB wire-protocol server in-process (needs the optional peer
 *   `@vercel/cosmosdb-server`, a dev dependency of the app);
 * - `startFaultProxy()`: a fault-injecting proxy in front of it;
 * - `InMemoryEventStore`, `InMemoryOpaqueStore` (also bound by `EventStoreModule.inMemory()`);
 * - `given(Aggregate, events).when(command).then(...)` for aggregates.
 */
export {
  startEmbeddedCosmos,
  startFaultProxy,
  type CosmosRequestKind,
  type EmbeddedCosmos,
  type EmbeddedCosmosOptions,
  type FaultAction,
  type FaultProxy,
  type FaultProxyOptions,
  type FaultRule,
  type PartitionKeyRange,
  type PartitionSplit,
  type ProxyRecord,
} from './modules/embedded-cosmos/index.js';
export { InMemoryEventStore, type CommittedEvent } from './modules/event-store/in-memory-event-store.js';
export { InMemoryOpaqueStore } from './modules/event-store/in-memory-opaque-store.js';
export { given, type Scenario, type ScenarioOutcome } from './modules/event-sourcing/testing.js';
