export { OrderStatsModule } from './order-stats.module.js';
export { ORDER_STATS_SUBSCRIBER, OrderStatsProjection } from './order-stats.projection.js';
export { ORDER_STATS_PARTITION, OrderStatsStore, type CustomerStatsView, type OrderStatsView } from './order-stats.store.js';
