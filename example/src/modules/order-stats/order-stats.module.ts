import { Module } from '@nestjs/common';
import { SubscriptionsModule } from 'nest-cosmos-eventstore';
import { OrderStatsController } from './order-stats.controller.js';
import { OrderStatsProjection } from './order-stats.projection.js';
import { OrderStatsStore } from './order-stats.store.js';

/**
 * Order statistics maintained by a change feed subscription, served over HTTP. Needs a global
 * `SubscriptionsModule.forRoot` and `CosmosModule` (the read model lives in the aggregates container).
 */
@Module({
  // The store is provided with the projection (which needs it) and exported from there to the controller.
  imports: [SubscriptionsModule.forFeature([OrderStatsProjection], { providers: [OrderStatsStore] })],
  controllers: [OrderStatsController],
})
export class OrderStatsModule {}
