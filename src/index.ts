/**
 * nest-cosmos-eventstore: event-sourced aggregates on Azure Cosmos DB (NoSQL API) for NestJS, storing the
 * same documents as protosource's Cosmos DB store.
 */
export {
  AGGREGATES_CONTAINER,
  COSMOS_CLIENT,
  CosmosModule,
  DEFAULT_COSMOS_RETRY_OPTIONS,
  ensureContainers,
  ensureDatabase,
  EVENTS_CONTAINER,
  InjectAggregatesContainer,
  InjectCosmosClient,
  InjectEventsContainer,
  type CosmosModuleOptions,
  type CosmosOptionsFactory,
} from './modules/cosmos/index.js';
export * from './modules/event-store/index.js';
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
export * from './modules/event-sourcing/index.js';
export * from './modules/subscriptions/index.js';
