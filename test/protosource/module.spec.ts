/*
 * ProtosourceModule wiring and the key scheme's value formatting, on the in-memory stores (no server).
 */
import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { create } from '@bufbuild/protobuf';
import { EventStoreModule } from '../../src/index.js';
import {
  InjectProtosourceRepository,
  ProtosourceModule,
  ProtosourceRepository,
  protosourceIndexValue,
  protosourcePartitionKey,
  protosourceStreamId,
} from '../../src/protosource.js';
import { OrderSchema, OrderSummarySchema, State, type Order } from '../../example/src/modules/protosource-orders/gen/example-order/order_pb.js';
import { orderCommands, orderDefinition } from '../../example/src/modules/protosource-orders/order.domain.js';

@Injectable()
class Orders {
  constructor(@InjectProtosourceRepository(OrderSchema) readonly repository: ProtosourceRepository<Order>) {}
}

@Module({ imports: [ProtosourceModule.forFeature([orderDefinition])], providers: [Orders] })
class OrdersFeature {}

describe('ProtosourceModule', () => {
  it('injects a repository per aggregate over EventStoreModule.inMemory()', async () => {
    const module = await Test.createTestingModule({ imports: [EventStoreModule.inMemory(), OrdersFeature] }).compile();
    const { repository } = module.get(Orders);
    expect(await repository.apply(orderCommands.create({ id: 'o-1', customerId: 'c-1' } as never, 'a'))).toBe(1);
    expect(await repository.apply(orderCommands.addItem({ id: 'o-1', item: { itemId: 'i', priceCents: 3n, quantity: 2 } } as never, 'a'))).toBe(2);
    expect(await repository.get('o-1')).toMatchObject({ id: 'o-1', version: 2n, totalCents: 6n, itemCount: 1 });
    expect((await repository.query(1, { customer_id: 'c-1' })).map((o) => o.id)).toEqual(['o-1']);
    await module.close();
  });

  it('refuses a definition protosource could not read: no id/version fields, a snapshot without the aggregate in field 5', () => {
    const stores = {} as never;
    expect(() => new ProtosourceRepository({ ...orderDefinition, schema: OrderSummarySchema } as never, stores)).toThrow(/version/);
    expect(() => new ProtosourceRepository({ ...orderDefinition, snapshot: { schema: OrderSummarySchema, every: 50 } }, stores)).toThrow(/snapshot/);
    expect(() => new ProtosourceRepository({ ...orderDefinition, snapshot: { schema: orderDefinition.snapshot!.schema, every: 0 } }, stores)).toThrow(/every/);
  });
});

describe('protosource keys', () => {
  it('formats values as Go %v does: strings raw, integers decimal (negative too), enums by name, unknown enum numbers as numbers', () => {
    expect(protosourceStreamId(OrderSchema, 'o#1')).toBe('example_app_order_v1#o#1');
    expect(protosourcePartitionKey(OrderSchema, 'o-1')).toBe('example_app_order_v1#order#id#o-1');
    const order = create(OrderSchema, { customerId: 'a#b', createAt: -5n, state: State.PAID });
    expect(protosourceIndexValue(OrderSchema, order, ['customer_id', 'create_at', 'state'])).toBe(
      'example_app_order_v1#order#customer_id#a#b#create_at#-5#state#STATE_PAID',
    );
    expect(protosourceIndexValue(OrderSummarySchema, { state: 42 }, ['state'])).toBe('example_app_order_v1#ordersummary#state#42');
    expect(protosourceIndexValue(OrderSchema, {}, ['item_count', 'customer_id'])).toBe('example_app_order_v1#order#item_count#0#customer_id#');
    expect(() => protosourceIndexValue(OrderSchema, {}, ['items'])).toThrow(/not a scalar/);
    expect(() => protosourceIndexValue(OrderSchema, {}, ['nope'])).toThrow(/no field/);
  });
});
