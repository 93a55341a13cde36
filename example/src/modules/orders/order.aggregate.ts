import { Aggregate, AggregateRoot, Gsi, On, type EventContext } from 'nest-cosmos-eventstore';
import { centsToDecimal, LineAdded, LineRemoved, OrderCancelled, OrderPlaced, OrderShipped, OrderSubmitted, toCents } from './order.events.js';

export type OrderStatus = 'open' | 'submitted' | 'shipped' | 'cancelled';

/** A line of the order; its price in integer cents (schema version 2 of the order's state). */
export interface OrderLine {
  sku: string;
  quantity: number;
  unitPriceCents: number;
}

/**
 * An order: placed for a customer, lines added and removed while open, then submitted and shipped, or
 * cancelled before shipping. Materialized with two indexes: slot 1 by customer (newest last by creation
 * time), slot 2 by status (by last change). State schema version 2: line prices in cents (version 1 held
 * `unitPrice` numbers; its snapshots are passed over and the order is replayed from its events).
 */
@Aggregate({ type: 'Order', snapshotEvery: 100, schemaVersion: 2 })
export class Order extends AggregateRoot {
  @Gsi(1, 'pk') customerId = '';
  @Gsi(2, 'pk') status: OrderStatus = 'open';
  lines: OrderLine[] = [];
  @Gsi(1, 'sk') createdAt = '';
  @Gsi(2, 'sk') updatedAt = '';

  override currentState(): OrderStatus | undefined {
    return this.version === 0 ? undefined : this.status;
  }

  /**
   * The sum of quantity × unit price, in cents: exact, as a bigint. Within the commands' limits one line
   * alone reaches 10^17 cents, past 2^53, where a number would drop cents.
   */
  get totalCents(): bigint {
    return this.lines.reduce((sum, line) => sum + BigInt(line.quantity) * BigInt(line.unitPriceCents), 0n);
  }

  /** The total in currency units as an exact decimal string with two decimals (`"12.50"`), as the HTTP API shows it. */
  get total(): string {
    return centsToDecimal(this.totalCents);
  }

  line(sku: string): OrderLine | undefined {
    return this.lines.find((line) => line.sku === sku);
  }

  @On(OrderPlaced)
  onPlaced(event: OrderPlaced, context: EventContext): void {
    this.customerId = event.customerId;
    this.status = 'open';
    this.createdAt = this.touch(context);
  }

  @On(LineAdded)
  onLineAdded(event: LineAdded, context: EventContext): void {
    const line = this.line(event.sku);
    // The same SKU again adds to its quantity at the newest price.
    if (line) Object.assign(line, { quantity: line.quantity + event.quantity, unitPriceCents: event.unitPriceCents });
    else this.lines.push({ sku: event.sku, quantity: event.quantity, unitPriceCents: event.unitPriceCents });
    this.touch(context);
  }

  @On(LineRemoved)
  onLineRemoved(event: LineRemoved, context: EventContext): void {
    this.lines = this.lines.filter((line) => line.sku !== event.sku);
    this.touch(context);
  }

  @On(OrderSubmitted)
  onSubmitted(_event: OrderSubmitted, context: EventContext): void {
    this.status = 'submitted';
    this.touch(context);
  }

  @On(OrderShipped)
  onShipped(_event: OrderShipped, context: EventContext): void {
    this.status = 'shipped';
    this.touch(context);
  }

  @On(OrderCancelled)
  onCancelled(_event: OrderCancelled, context: EventContext): void {
    this.status = 'cancelled';
    this.touch(context);
  }

  /**
   * Materialized documents written before prices moved to cents hold lines with `unitPrice`: `get` and
   * `query` read them in today's shape. (Snapshots of the old shape never get here: the repository passes
   * snapshots of another `schemaVersion` over.)
   */
  override restoreSnapshot(state: Record<string, unknown>): void {
    super.restoreSnapshot(state);
    this.lines = this.lines.map((line) => {
      const { sku, quantity, unitPriceCents, unitPrice } = line as OrderLine & { unitPrice?: number };
      return { sku, quantity, unitPriceCents: unitPriceCents ?? toCents(Number(unitPrice)) };
    });
  }

  private touch(context: EventContext): string {
    this.updatedAt = new Date(Math.floor(context.at / 1000)).toISOString();
    return this.updatedAt;
  }
}
