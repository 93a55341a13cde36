/*
 * A protobuf subscriber on the events container: protosource-mode events (ours and Go's) reach its handlers
 * as typed messages through the subscriptions' `serializer` option, selected by full message name.
 */
import { Inject } from '@nestjs/common';
import { createRegistry } from '@bufbuild/protobuf';
import { randomUUID } from 'node:crypto';
import { OnStoredEvent, OPAQUE_STORE, SNAPSHOT_TAIL_STORE, Subscriber, type OpaqueStore, type SnapshotTailStore, type SubscribedEvent } from '../../src/index.js';
import { ProtosourceEventDeserializer, ProtosourceRepository, type ProtosourceSubscribedMessage } from '../../src/protosource.js';
import {
  CreatedSchema,
  file_example_order_order,
  PlacedSchema,
  type Created,
  type Placed,
} from '../../example/src/modules/protosource-orders/gen/example-order/order_pb.js';
import { orderCommands, orderDefinition } from '../../example/src/modules/protosource-orders/order.domain.js';
import { startEmbeddedCosmos, type EmbeddedCosmos } from '../../src/testing.js';
import { DeliveryLog, eventually, startInstance, type Instance } from '../support/subscriptions.js';
import { anyOf, eventHead, message } from './wire.js';

const SEEN = Symbol('SEEN');
type Seen = Array<{ stream: string; version: number; type: string; customerId?: string; placedAt?: bigint }>;

@Subscriber({ name: 'protobuf-orders', serializer: new ProtosourceEventDeserializer({ registry: createRegistry(file_example_order_order) }) })
class ProtobufOrders {
  constructor(@Inject(SEEN) private readonly seen: Seen) {}

  @OnStoredEvent({ aggregateIdPrefix: 'example_app_order_v1#', types: [CreatedSchema.typeName] })
  created({ streamId: aggregateId, version, event }: SubscribedEvent<ProtosourceSubscribedMessage<Created>>): void {
    this.seen.push({ stream: aggregateId, version, type: event!.type, customerId: event!.message.customerId });
  }

  @OnStoredEvent({ aggregateIdPrefix: 'example_app_order_v1#', types: [PlacedSchema.typeName] })
  placed({ streamId: aggregateId, version, event }: SubscribedEvent<ProtosourceSubscribedMessage<Placed>>): void {
    this.seen.push({ stream: aggregateId, version, type: event!.type, placedAt: event!.message.placedAt });
  }
}

let cosmos: EmbeddedCosmos;
let instance: Instance;
const seen: Seen = [];

beforeAll(async () => {
  cosmos = await startEmbeddedCosmos();
  instance = await startInstance({
    name: 'a',
    endpoint: cosmos.endpoint,
    key: cosmos.key,
    databaseId: `db-${randomUUID()}`,
    subscribers: [ProtobufOrders],
    log: new DeliveryLog(),
    providers: [{ provide: SEEN, useValue: seen }],
  });
});

afterAll(async () => {
  await instance?.close();
  await cosmos?.close();
});

it('hands typed messages to the handlers, ours and Go-written alike, selected by full message name', async () => {
  const events = instance.module.get<SnapshotTailStore>(SNAPSHOT_TAIL_STORE);
  const orders = new ProtosourceRepository(orderDefinition, { events, opaque: instance.module.get<OpaqueStore>(OPAQUE_STORE) });
  await orders.apply(orderCommands.create({ id: 'ours', customerId: 'c-ts' } as never, 'alice'));
  await orders.apply(orderCommands.setShipping({ id: 'ours', shippingAddress: 'x' } as never, 'alice')); // no handler takes it
  await orders.apply(orderCommands.place({ id: 'ours', placedAt: 7n } as never, 'alice'));
  await events.save('example_app_order_v1#go', [
    { version: 1, data: anyOf('example.app.order.v1.Created', message(...eventHead('go', 1, 1n, 'gopher'), [5, 'c-go'])) },
  ]);
  await eventually('three events handled', () => seen.length >= 3);
  expect(seen.sort((a, b) => (a.stream + a.version < b.stream + b.version ? -1 : 1))).toEqual([
    { stream: 'example_app_order_v1#go', version: 1, type: 'example.app.order.v1.Created', customerId: 'c-go' },
    { stream: 'example_app_order_v1#ours', version: 1, type: 'example.app.order.v1.Created', customerId: 'c-ts' },
    { stream: 'example_app_order_v1#ours', version: 3, type: 'example.app.order.v1.Placed', placedAt: 7n },
  ]);
});
