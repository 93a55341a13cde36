export { CosmosModule } from './cosmos.module.js';
export { AGGREGATES_CONTAINER, COSMOS_CLIENT, EVENTS_CONTAINER } from './cosmos.constants.js';
export { InjectAggregatesContainer, InjectCosmosClient, InjectEventsContainer } from './cosmos.decorators.js';
export {
  DEFAULT_COSMOS_RETRY_OPTIONS,
  type CosmosModuleOptions,
  type CosmosOptionsFactory,
} from './cosmos-options.interface.js';
export {
  AGGREGATES_INDEXING_POLICY,
  applyIndexingPolicy,
  CosmosStartupTimeoutError,
  DEFAULT_AGGREGATES_CONTAINER,
  DEFAULT_EVENTS_CONTAINER,
  DEFAULT_STARTUP_TIMEOUT_MS,
  ensureContainer,
  ensureContainers,
  ensureDatabase,
  EVENTS_INDEXING_POLICY,
  type EnsureContainerOptions,
  type EnsureOptions,
} from './cosmos-infrastructure.js';
export type { CosmosTokenCredential } from './cosmos-credential.js';
export { messageOf, statusOf, substatusOf } from './cosmos-errors.js';
export {
  backoffMs,
  classifyBatchFailure,
  isLostConnection,
  isTransientReadFailure,
  pause,
  sdkRetriedUnknownOutcome,
  type BatchFailure,
} from './transient-faults.js';
export { evictFailedRoutingMaps } from './routing-map-cache.js';
export {
  CosmosHealthIndicator,
  DEFAULT_HEALTH_TIMEOUT_MS,
  healthIndicatorSession,
  type HealthIndicatorResult,
  type HealthResult,
} from './cosmos.health.js';
