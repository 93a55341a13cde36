import { create, createRegistry, type Message } from '@bufbuild/protobuf';
import { SKIP, type ProtosourceAggregateDefinition, type ProtosourceCommand, type ProtosourceEmitted } from 'nest-cosmos-eventstore/protosource';
import {
  BillingClearedSchema,
  BillingSetSchema,
  CancelledSchema,
  CreatedSchema,
  file_example_order_order,
  ItemAddedSchema,
  ItemRemovedSchema,
  OrderSchema,
  OrderSummarySchema,
  PlacedSchema,
  ShippingSetSchema,
  SnapshotSchema,
  State,
  TagAddedSchema,
  TagRemovedSchema,
  type AddItem,
  type AddTag,
  type Cancel,
  type Create,
  type Order,
  type Place,
  type RemoveItem,
  type RemoveTag,
  type SetBilling,
  type SetShipping,
} from './gen/example-order/order_pb.js';

/** protosource's snapshot interval for the example order (`every_n_events: 50`). */
export const ORDER_SNAPSHOT_EVERY = 50;

/**
 * protosource's example order aggregate (`proto/example/app/order/v1/order_v1.proto`), with what Go
 * generates from its annotations written out: `On`, the derived totals (`AfterOn`), the snapshot every 50
 * events, the customer index (gsi1: customer_id, create_at) and the `OrderSummary` projection (gsi1 as the
 * order's, gsi2: state, placed_at).
 */
export const orderDefinition: ProtosourceAggregateDefinition<Order> = {
  schema: OrderSchema,
  registry: createRegistry(file_example_order_order),
  snapshot: { schema: SnapshotSchema, every: ORDER_SNAPSHOT_EVERY },
  indexes: { 1: { pk: ['customer_id'], sk: ['create_at'] } },
  projections: [
    {
      schema: OrderSummarySchema,
      project: (o) =>
        create(OrderSummarySchema, {
          id: o.id,
          state: o.state,
          customerId: o.customerId,
          customerName: o.customerName,
          totalCents: o.totalCents,
          itemCount: o.itemCount,
          placedAt: o.placedAt,
          createAt: o.createAt,
        }),
      indexes: { 1: { pk: ['customer_id'], sk: ['create_at'] }, 2: { pk: ['state'], sk: ['placed_at'] } },
    },
  ],
  on: applyOrderEvent,
  afterOn(order) {
    order.itemCount = Object.keys(order.items).length;
    order.totalCents = Object.values(order.items).reduce((sum, item) => sum + item.priceCents * BigInt(item.quantity), 0n);
  },
};

interface EventHead {
  at: bigint;
  actor: string;
}

function modified(order: Order, event: EventHead): void {
  order.modifyAt = event.at;
  order.modifyBy = event.actor;
}

/** protosource's generated `Order.On`, event by event. */
export function applyOrderEvent(order: Order, event: Message): void {
  const e = event as Message & EventHead & Record<string, unknown>;
  switch (event.$typeName) {
    case CreatedSchema.typeName:
      order.createAt = e.at;
      order.createBy = e.actor;
      modified(order, e);
      order.customerId = e.customerId as string;
      order.customerName = e.customerName as string;
      order.state = State.DRAFT;
      return;
    case ItemAddedSchema.typeName: {
      modified(order, e);
      const item = e.item as Order['items'][string] | undefined;
      if (item) order.items[item.itemId] = item;
      return;
    }
    case ItemRemovedSchema.typeName:
      modified(order, e);
      delete order.items[e.itemId as string];
      return;
    case TagAddedSchema.typeName: {
      modified(order, e);
      const tag = e.tag as Order['tags'][string] | undefined;
      if (tag) order.tags[tag.key] = tag;
      return;
    }
    case TagRemovedSchema.typeName:
      modified(order, e);
      delete order.tags[e.key as string];
      return;
    case ShippingSetSchema.typeName:
      modified(order, e);
      order.shippingAddress = e.shippingAddress as string;
      return;
    case BillingSetSchema.typeName:
    case BillingClearedSchema.typeName:
      // By name, as Go copies it: unset clears.
      modified(order, e);
      order.billing = e.billing as Order['billing'];
      return;
    case PlacedSchema.typeName:
      modified(order, e);
      order.placedAt = e.placedAt as bigint;
      order.state = State.PLACED;
      return;
    case CancelledSchema.typeName:
      modified(order, e);
      order.state = State.CANCELLED;
      return;
    default:
      throw new Error(`${event.$typeName}: unhandled event`);
  }
}

type Emit = (order: Order) => readonly ProtosourceEmitted[];
const draftOnly = [State.DRAFT] as const;

function command(name: string, id: string, actor: string, lifecycle: 'creation' | 'mutation', emit: Emit, extra: Partial<ProtosourceCommand<Order>> = {}): ProtosourceCommand<Order> {
  return { name, id, actor, lifecycle, emit, ...extra };
}

/**
 * The order's commands as protosource's generated pipeline runs them: lifecycle, allowed states, the
 * example's evaluators (an item already present is refused, removing an absent one is a no-op) and the
 * required billing of SetBilling. The actor is the caller's, never the body's.
 */
export const orderCommands = {
  create: (c: Create, actor: string) =>
    command('Create', c.id, actor, 'creation', () => [{ schema: CreatedSchema, fields: { customerId: c.customerId, customerName: c.customerName } }]),
  addItem: (c: AddItem, actor: string) =>
    command('AddItem', c.id, actor, 'mutation', () => [{ schema: ItemAddedSchema, fields: { item: c.item } }], {
      allowedStates: draftOnly,
      validate: () => (c.item?.itemId ? undefined : 'item.item_id: value is required'),
      evaluate(order) {
        const itemId = c.item?.itemId ?? '';
        if (itemId in order.items) throw new ItemAlreadyPresentError(itemId);
      },
    }),
  removeItem: (c: RemoveItem, actor: string) =>
    command('RemoveItem', c.id, actor, 'mutation', () => [{ schema: ItemRemovedSchema, fields: { itemId: c.itemId } }], {
      allowedStates: draftOnly,
      evaluate: (order) => (c.itemId in order.items ? undefined : SKIP),
    }),
  addTag: (c: AddTag, actor: string) =>
    command('AddTag', c.id, actor, 'mutation', () => [{ schema: TagAddedSchema, fields: { tag: c.tag } }], { allowedStates: draftOnly }),
  removeTag: (c: RemoveTag, actor: string) =>
    command('RemoveTag', c.id, actor, 'mutation', () => [{ schema: TagRemovedSchema, fields: { key: c.key } }], { allowedStates: draftOnly }),
  setShipping: (c: SetShipping, actor: string) =>
    command('SetShipping', c.id, actor, 'mutation', () => [{ schema: ShippingSetSchema, fields: { shippingAddress: c.shippingAddress } }], {
      allowedStates: draftOnly,
    }),
  setBilling: (c: SetBilling, actor: string) =>
    command('SetBilling', c.id, actor, 'mutation', () => [{ schema: BillingSetSchema, fields: { billing: c.billing } }], {
      validate: () => (c.billing ? undefined : 'billing: value is required'),
    }),
  clearBilling: (c: { id: string }, actor: string) => command('ClearBilling', c.id, actor, 'mutation', () => [{ schema: BillingClearedSchema }]),
  place: (c: Place, actor: string) =>
    command('Place', c.id, actor, 'mutation', () => [{ schema: PlacedSchema, fields: { placedAt: c.placedAt } }], { allowedStates: draftOnly }),
  cancel: (c: Cancel, actor: string) =>
    command('Cancel', c.id, actor, 'mutation', () => [{ schema: CancelledSchema, fields: { reason: c.reason } }], {
      allowedStates: [State.DRAFT, State.PLACED, State.PAID],
    }),
};

/**
 * The example's `ErrItemAlreadyPresent`. Go's handler answers it as an internal error (500, CMD_INTERNAL);
 * ours answers 409 `CMD_REJECTED`, since it is the caller's command that the state refuses.
 */
export class ItemAlreadyPresentError extends Error {
  constructor(readonly itemId: string) {
    super(`order: item already present: item_id=${JSON.stringify(itemId)}`);
    this.name = 'ItemAlreadyPresentError';
  }
}
