export { ProtosourceOrdersModule } from './protosource-orders.module.js';
export { orderDefinition, orderCommands, ORDER_SNAPSHOT_EVERY } from './order.domain.js';
export { PREFIX } from './protosource-orders.controller.js';
