import { SNAPSHOT_EVENT_TYPE, STREAM_DELETED_TYPE } from 'nest-cosmos-eventstore';
import type { OrderStatus } from '../orders/index.js';

/** Statuses whose order totals count as a customer's revenue: committed, not open carts nor cancelled. */
export const REVENUE_STATUSES: readonly OrderStatus[] = ['submitted', 'shipped'];
export const STATUSES: readonly OrderStatus[] = ['open', 'submitted', 'shipped', 'cancelled'];

/**
 * An exact decimal amount: `units × 10^-scale`. Money is never a JavaScript number here: at the orders'
 * limits (quantity 1,000,000 at 1,000,000,000) a total is 10^17 cents, beyond 2^53, where a number can no
 * longer hold 0.10 beside it.
 */
export interface Decimal {
  units: bigint;
  scale: number;
}

const DECIMAL = /^(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/i;

/** The exact decimal a number or decimal string was written as (`0.1` is one tenth, not the binary double). */
export function parseDecimal(value: unknown): Decimal {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value : '';
  const match = DECIMAL.exec(text);
  if (!match) throw new Error(`not a non-negative decimal amount: ${JSON.stringify(value)}`);
  const [, whole, fraction = '', exponent = '0'] = match;
  let units = BigInt(whole + fraction);
  let scale = fraction.length - Number(exponent);
  if (scale < 0) {
    units *= 10n ** BigInt(-scale);
    scale = 0;
  }
  return { units, scale };
}

/** A decimal as a plain string (`0.335`, `1000000000`): exact, as rows store it. */
export function formatDecimal({ units, scale }: Decimal): string {
  if (scale === 0) return units.toString();
  const digits = units.toString().padStart(scale + 1, '0');
  return `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

/**
 * THE one place that reads a line's unit price from a `LineAdded` event. Today the event carries
 * `unitPrice`, a JSON number in currency units; when an upcaster moves lines to integer cents, only this
 * function changes (to `{ units: BigInt(payload.unitPriceCents), scale: 2 }`).
 */
export function unitPriceOf(payload: Record<string, unknown>): Decimal {
  // LineAdded v2 holds integer cents (JsonEventSerializer upcasts v1's unitPrice on read).
  if (payload.unitPriceCents !== undefined) return { units: BigInt(String(payload.unitPriceCents)), scale: 2 };
  return parseDecimal(payload.unitPrice);
}

/**
 * An order's total in integer cents: the exact sum of quantity × unit price, rounded half up to a cent once
 * (as `Order.total` rounds its sum).
 */
export function totalCents(lines: OrderRow['lines']): bigint {
  const priced = Object.values(lines).map((l) => ({ quantity: BigInt(l.quantity), price: parseDecimal(l.unitPrice) }));
  const scale = Math.max(2, ...priced.map((l) => l.price.scale));
  const sum = priced.reduce((acc, l) => acc + l.quantity * l.price.units * 10n ** BigInt(scale - l.price.scale), 0n);
  const divisor = 10n ** BigInt(scale - 2);
  return (sum + divisor / 2n) / divisor;
}

/** Cents as currency units on the wire: an exact decimal string with two decimals (`"0.10"`, `"-3.00"`). */
export function centsToAmount(cents: bigint): string {
  const sign = cents < 0n ? '-' : '';
  return sign + formatDecimal({ units: cents < 0n ? -cents : cents, scale: 2 });
}

/** Integer cents as a row stores them: a decimal string (rows written before exact money hold numbers). */
export function readCents(value: unknown): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') return BigInt(Math.round(value));
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
  throw new Error(`not integer cents: ${JSON.stringify(value)}`);
}

/** What the projection keeps of one order: enough to move it between the counters. Money exact, as strings. */
export interface OrderRow {
  orderId: string;
  customerId: string;
  status: OrderStatus;
  /** Unit prices as exact decimal strings (`formatDecimal`); older rows may hold numbers. */
  lines: Record<string, { quantity: number; unitPrice: string | number }>;
  /** The order total in integer cents, a decimal string (`totalCents`). */
  cents: string;
  /** The last version of the order applied: an event at or below it is a redelivery. */
  version: number;
  /**
   * The order was erased (its stream's tombstone, `'$stream-deleted'`, was applied): it counts nowhere any
   * more; the row stays, emptied, so a redelivered event of the order is still recognised by its version.
   */
  erased?: true;
}

/** Orders in one status and the sum of their totals (integer cents, a decimal string). */
export interface StatusRow {
  status: OrderStatus;
  orders: number;
  cents: string;
}

/** One customer's orders per status and revenue (totals of submitted and shipped orders, integer cents as a string). */
export interface CustomerRow {
  customerId: string;
  orders: number;
  statuses: Record<OrderStatus, number>;
  revenueCents: string;
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
  if (event.type === STREAM_DELETED_TYPE) {
    // An erased order leaves the counters; one never counted (or erased already) changes nothing.
    if (!row || row.erased) return undefined;
    return { ...row, lines: {}, cents: '0', version: event.version, erased: true };
  }
  if (event.type === SNAPSHOT_EVENT_TYPE) {
    // The order's whole state (`AggregateRepository.truncate` writes one before cutting the events under it): the
    // row is what it says, so an order whose first events are gone is counted from here.
    if (row?.erased) return undefined;
    return { ...orderRowOf(event.aggregateId, payload), version: event.version };
  }
  if (event.type === types.placed) {
    return { orderId: event.aggregateId, customerId: String(payload.customerId), status: 'open', lines: {}, cents: '0', version: event.version };
  }
  if (!row) throw new Error(`order ${event.aggregateId}: ${event.type} at version ${event.version} before it was placed`);
  if (row.erased) return undefined;
  // Without a prototype, a SKU named `__proto__` or `constructor` is a line like any other.
  const next: OrderRow = { ...row, lines: Object.assign(Object.create(null) as OrderRow['lines'], row.lines), version: event.version };
  switch (event.type) {
    case types.lineAdded: {
      const sku = String(payload.sku);
      const quantity = Number(payload.quantity);
      // As the aggregate does: the same SKU again adds to its quantity at the newest price.
      next.lines[sku] = { quantity: (next.lines[sku]?.quantity ?? 0) + quantity, unitPrice: formatDecimal(unitPriceOf(payload)) };
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
  next.cents = totalCents(next.lines).toString();
  return next;
}

/** The row of an order's snapshot (the `Order` state: lines priced in cents, or in `unitPrice` before state schema 2). */
function orderRowOf(orderId: string, state: Record<string, unknown>): Omit<OrderRow, 'version'> {
  const lines: OrderRow['lines'] = Object.create(null) as OrderRow['lines'];
  for (const line of Array.isArray(state.lines) ? (state.lines as Array<Record<string, unknown>>) : []) {
    lines[String(line.sku)] = { quantity: Number(line.quantity), unitPrice: formatDecimal(unitPriceOf(line)) };
  }
  const status = STATUSES.find((s) => s === state.status);
  if (status === undefined) throw new Error(`order ${orderId}: a snapshot with status ${JSON.stringify(state.status)}`);
  return { orderId, customerId: String(state.customerId), status, lines, cents: totalCents(lines).toString() };
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

/** How the counters change when an order goes from `before` to `after` (money in integer cents). */
export function countersDelta(
  before: OrderRow | undefined,
  after: OrderRow,
): { statuses: Map<OrderStatus, { orders: number; cents: bigint }>; customer: { orders: number; statuses: Partial<Record<OrderStatus, number>>; revenueCents: bigint } } {
  const statuses = new Map<OrderStatus, { orders: number; cents: bigint }>();
  const add = (status: OrderStatus, orders: number, cents: bigint) => {
    const current = statuses.get(status) ?? { orders: 0, cents: 0n };
    statuses.set(status, { orders: current.orders + orders, cents: current.cents + cents });
  };
  const customerStatuses: Partial<Record<OrderStatus, number>> = {};
  const revenue = (row: OrderRow | undefined) => (row && REVENUE_STATUSES.includes(row.status) ? readCents(row.cents) : 0n);
  if (before) {
    add(before.status, -1, -readCents(before.cents));
    customerStatuses[before.status] = (customerStatuses[before.status] ?? 0) - 1;
  }
  if (!after.erased) {
    add(after.status, 1, readCents(after.cents));
    customerStatuses[after.status] = (customerStatuses[after.status] ?? 0) + 1;
  }
  for (const [status, delta] of statuses) if (delta.orders === 0 && delta.cents === 0n) statuses.delete(status);
  for (const status of STATUSES) if (customerStatuses[status] === 0) delete customerStatuses[status];
  return {
    statuses,
    customer: {
      orders: after.erased ? (before ? -1 : 0) : before ? 0 : 1,
      statuses: customerStatuses,
      revenueCents: (after.erased ? 0n : revenue(after)) - revenue(before),
    },
  };
}
