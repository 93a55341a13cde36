export { ProtosourceOrdersModule } from './protosource-orders.module.js';
export { orderDefinition, orderCommands, ORDER_SNAPSHOT_EVERY } from './order.domain.js';
export { answerBodyRefusal, answerUndecodablePath, PREFIX } from './protosource-orders.controller.js';
