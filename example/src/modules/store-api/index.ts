export { StoreApiModule } from './store-api.module.js';
export { AdminEndpoint, AdminTokenGuard } from './admin-token.guard.js';
export type { MaterializedDto, MaterializedPageDto, RecordDto, RecordsDto } from './store-api.dto.js';
export type { ServiceHealth } from './health.controller.js';
