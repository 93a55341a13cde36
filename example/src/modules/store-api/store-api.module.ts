import { Module } from '@nestjs/common';
import { AggregatesController } from './aggregates.controller.js';
import { CosmosHealthIndicator } from 'nest-cosmos-eventstore';
import { HealthController } from './health.controller.js';
import { MaterializedController } from './materialized.controller.js';

/**
 * The store's HTTP API: `/aggregates/:id/events`, `/materialized` and `/health`. Needs the store tokens and
 * the Cosmos containers from global modules: `EventStoreModule.forRootAsync({ isGlobal: true, ... })` and
 * `CosmosModule` (global by default).
 */
@Module({
  controllers: [AggregatesController, MaterializedController, HealthController],
  providers: [CosmosHealthIndicator],
})
export class StoreApiModule {}
