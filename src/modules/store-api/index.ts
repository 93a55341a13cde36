export { StoreApiModule } from './store-api.module.js';
export { AdminEndpoint, AdminTokenGuard } from './admin-token.guard.js';
export { EventStoreExceptionFilter, type ErrorBody } from './event-store-exception.filter.js';
export { CosmosHealthIndicator, DEFAULT_HEALTH_TIMEOUT_MS, type HealthResult } from './cosmos.health.js';
export type { MaterializedDto, MaterializedPageDto, RecordDto, RecordsDto } from './store-api.dto.js';
export type { ServiceHealth } from './health.controller.js';
