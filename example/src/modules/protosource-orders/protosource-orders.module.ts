import { Module } from '@nestjs/common';
import { ProtosourceModule } from 'nest-cosmos-eventstore/protosource';
import { orderDefinition } from './order.domain.js';
import { ProtosourceOrdersController } from './protosource-orders.controller.js';

/**
 * protosource's example order, stored in protosource mode in the same events and aggregates containers as
 * the JSON-mode `/orders`, and served on protosource's generated routes (`example/app/order/v1/...`).
 */
@Module({ imports: [ProtosourceModule.forFeature([orderDefinition])], controllers: [ProtosourceOrdersController] })
export class ProtosourceOrdersModule {}
