import { Module } from '@nestjs/common';
import { EventSourcingModule } from 'nest-cosmos-eventstore';
import { Order } from './order.aggregate.js';
import { OrdersController } from './orders.controller.js';

/** The orders example domain and its HTTP API. Needs the event store tokens (a global `EventStoreModule`). */
@Module({
  imports: [EventSourcingModule.forFeature([Order])],
  controllers: [OrdersController],
})
export class OrdersModule {}
