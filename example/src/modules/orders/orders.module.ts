import { Module } from '@nestjs/common';
import { EventSourcingModule } from 'nest-cosmos-eventstore';
import { Order } from './order.aggregate.js';
import { EventsController } from './events.controller.js';
import { OrdersController } from './orders.controller.js';

/** The orders example domain and its HTTP API (`/orders`, `/customers/:id/orders`, `/admin/orders/:id`, `/events`). Needs the event store tokens (a global `EventStoreModule`). */
@Module({
  imports: [EventSourcingModule.forFeature([Order])],
  controllers: [OrdersController, EventsController],
})
export class OrdersModule {}
