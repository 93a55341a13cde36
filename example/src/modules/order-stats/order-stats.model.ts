import type { OrderStatus } from '../orders/index.js';

/** Statuses whose order totals count as a customer's revenue: committed, not open carts nor cancelled. */
export const REVENUE_STATUSES: readonly OrderStatus[] = ['submitted', 'shipped'];
export const STATUSES: readonly OrderStatus[] = ['open', 'submitted', 'shipped', 'cancelled'];

/** What the projection keeps of one order: enough to move it between the counters. Money in integer cents. */
export interface OrderRow {
  orderId: string;
  customerId: string;
  status: OrderStatus;
  lines: Record<string, { quantity: number; unitPrice: number }>;
  /** The order total in cents, rounded as `Order.total` rounds it. */
  cents: number;
  /** The last version of the order applied: an event at or below it is a redelivery. */
  version: number;
}

/** Orders in one status and the sum of their totals. */
export interface StatusRow {
  status: OrderStatus;
  orders: number;
  cents: number;
}

/** One customer's orders per status and revenue (totals of submitted and shipped orders). */
export interface CustomerRow {
  customerId: string;
  orders: number;
  statuses: Record<OrderStatus, number>;
  revenueCents: number;
}

/** An order event as the projection reads it (the envelope of the event-sourcing serializer). */
export interface OrderEventEnvelope {
  type: string;
  aggregateId: string;
  version: number;
  payload: unknown;
}

/** The order after one event; `undefined` for an event that changes nothing the projection keeps. */
export function nextOrderRow(row: OrderRow | undefined, event: OrderEventEnvelope, types: OrderEventTypes): OrderRow | undefined {
  const payload = (event.payload ?? {}) as Record<string, unknown>;
  if (event.type === types.placed) {
    return { orderId: event.aggregateId, customerId: String(payload.customerId), status: 'open', lines: {}, cents: 0, version: event.version };
  }
  if (!row) throw new Error(`order ${event.aggregateId}: ${event.type} at version ${event.version} before it was placed`);
  // Without a prototype, a SKU named `__proto__` or `constructor` is a line like any other.
  const next: OrderRow = { ...row, lines: Object.assign(Object.create(null) as OrderRow['lines'], row.lines), version: event.version };
  switch (event.type) {
    case types.lineAdded: {
      const sku = String(payload.sku);
      const quantity = Number(payload.quantity);
      // LineAdded v2 holds cents (JsonEventSerializer upcasts v1); the row keeps the price as the API shows it.
      const unitPrice = payload.unitPriceCents !== undefined ? Number(payload.unitPriceCents) / 100 : Number(payload.unitPrice);
      // As the aggregate does: the same SKU again adds to its quantity at the newest price.
      next.lines[sku] = { quantity: (next.lines[sku]?.quantity ?? 0) + quantity, unitPrice };
      break;
    }
    case types.lineRemoved:
      delete next.lines[String(payload.sku)];
      break;
    case types.submitted:
      next.status = 'submitted';
      break;
    case types.shipped:
      next.status = 'shipped';
      break;
    case types.cancelled:
      next.status = 'cancelled';
      break;
    default:
      return { ...row, version: event.version };
  }
  next.cents = Math.round(Object.values(next.lines).reduce((sum, l) => sum + l.quantity * l.unitPrice, 0) * 100);
  return next;
}

/** The stored type names of the order events (`eventTypeOf` of each class). */
export interface OrderEventTypes {
  placed: string;
  lineAdded: string;
  lineRemoved: string;
  submitted: string;
  shipped: string;
  cancelled: string;
}

/** How the counters change when an order goes from `before` to `after`. */
export function countersDelta(
  before: OrderRow | undefined,
  after: OrderRow,
): { statuses: Map<OrderStatus, { orders: number; cents: number }>; customer: { orders: number; statuses: Partial<Record<OrderStatus, number>>; revenueCents: number } } {
  const statuses = new Map<OrderStatus, { orders: number; cents: number }>();
  const add = (status: OrderStatus, orders: number, cents: number) => {
    const current = statuses.get(status) ?? { orders: 0, cents: 0 };
    statuses.set(status, { orders: current.orders + orders, cents: current.cents + cents });
  };
  const customerStatuses: Partial<Record<OrderStatus, number>> = {};
  const revenue = (row: OrderRow | undefined) => (row && REVENUE_STATUSES.includes(row.status) ? row.cents : 0);
  if (before) {
    add(before.status, -1, -before.cents);
    customerStatuses[before.status] = (customerStatuses[before.status] ?? 0) - 1;
  }
  add(after.status, 1, after.cents);
  customerStatuses[after.status] = (customerStatuses[after.status] ?? 0) + 1;
  for (const [status, delta] of statuses) if (delta.orders === 0 && delta.cents === 0) statuses.delete(status);
  for (const status of STATUSES) if (customerStatuses[status] === 0) delete customerStatuses[status];
  return {
    statuses,
    customer: { orders: before ? 0 : 1, statuses: customerStatuses, revenueCents: revenue(after) - revenue(before) },
  };
}
