/**
 * nest-cosmos-eventstore: event-sourced aggregates on Azure Cosmos DB (NoSQL API) for NestJS, storing the
 * same documents as protosource's Cosmos DB store.
 *
 * Test helpers (the embedded Cosmos DB server, the fault proxy, the in-memory stores, `given`) live in
 * `nest-cosmos-eventstore/testing`, so this entry never loads the embedded server's dependencies.
 */
export {
  AGGREGATES_CONTAINER,
  AGGREGATES_INDEXING_POLICY,
  applyIndexingPolicy,
  COSMOS_CLIENT,
  CosmosHealthIndicator,
  CosmosModule,
  CosmosStartupTimeoutError,
  DEFAULT_AGGREGATES_CONTAINER,
  DEFAULT_COSMOS_RETRY_OPTIONS,
  DEFAULT_EVENTS_CONTAINER,
  DEFAULT_HEALTH_TIMEOUT_MS,
  DEFAULT_STARTUP_TIMEOUT_MS,
  ensureContainers,
  ensureDatabase,
  EVENTS_CONTAINER,
  EVENTS_INDEXING_POLICY,
  evictFailedRoutingMaps,
  InjectAggregatesContainer,
  InjectCosmosClient,
  InjectEventsContainer,
  messageOf,
  statusOf,
  substatusOf,
  type CosmosModuleOptions,
  type CosmosOptionsFactory,
  type CosmosTokenCredential,
  type EnsureOptions,
  type HealthResult,
} from './modules/cosmos/index.js';
export * from './modules/event-store/index.js';
export * from './modules/event-sourcing/index.js';
export * from './modules/subscriptions/index.js';
export {
  cosmosTelemetryPlugin,
  currentTraceparent,
  INSTRUMENTATION_SCOPE,
  recordSubscriberLag,
  telemetryReady,
  traceSubscriberPage,
  type SubscriberPage,
} from './modules/telemetry/index.js';
