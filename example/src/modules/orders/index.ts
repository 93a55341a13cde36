export { OrdersModule } from './orders.module.js';
export { Order, type OrderLine, type OrderStatus } from './order.aggregate.js';
export { AddLine, CancelOrder, PlaceOrder, RemoveLine, ShipOrder, SubmitOrder } from './order.commands.js';
export { fromCents, LineAdded, lineAddedV1ToV2, LineRemoved, OrderCancelled, OrderPlaced, OrderShipped, OrderSubmitted, toCents } from './order.events.js';
export type { HistoryEventDto, OrderDto, OrderPageDto } from './orders.dto.js';
