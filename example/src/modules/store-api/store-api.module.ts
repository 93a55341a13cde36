import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { AggregatesController } from './aggregates.controller.js';
import { TerminusModule } from '@nestjs/terminus';
import { HealthController } from './health.controller.js';
import { MaterializedController } from './materialized.controller.js';
import { OwnedStreams } from './owned-streams.js';
import { StreamsAdminController } from './streams-admin.controller.js';

/**
 * The store's HTTP API: `/aggregates/:id/events` (writes outside the repositories' streams only, an admin
 * endpoint), `/materialized`, `/health` and the admin repairs of `/admin/streams/:streamId`. Needs the store tokens and
 * the Cosmos containers from global modules: `EventStoreModule.forRootAsync({ isGlobal: true, ... })` and
 * `CosmosModule` (global by default).
 */
@Module({
  // CosmosModule and SubscriptionsModule provide the health indicators; terminus runs them.
  imports: [DiscoveryModule, TerminusModule.forRoot({ logger: false })],
  controllers: [AggregatesController, MaterializedController, HealthController, StreamsAdminController],
  providers: [OwnedStreams],
})
export class StoreApiModule {}
