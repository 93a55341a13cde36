import { Aggregate, AggregateRoot, Gsi, On, type EventContext } from 'nest-cosmos-eventstore';
import { LineAdded, LineRemoved, OrderCancelled, OrderPlaced, OrderShipped, OrderSubmitted } from './order.events.js';

export type OrderStatus = 'open' | 'submitted' | 'shipped' | 'cancelled';

export interface OrderLine {
  sku: string;
  quantity: number;
  unitPrice: number;
}

/**
 * An order: placed for a customer, lines added and removed while open, then submitted and shipped, or
 * cancelled before shipping. Materialized with two indexes: slot 1 by customer (newest last by creation
 * time), slot 2 by status (by last change).
 */
@Aggregate({ type: 'Order', snapshotEvery: 100 })
export class Order extends AggregateRoot {
  @Gsi(1, 'pk') customerId = '';
  @Gsi(2, 'pk') status: OrderStatus = 'open';
  lines: OrderLine[] = [];
  @Gsi(1, 'sk') createdAt = '';
  @Gsi(2, 'sk') updatedAt = '';

  override currentState(): OrderStatus | undefined {
    return this.version === 0 ? undefined : this.status;
  }

  /** The sum of quantity × unit price, rounded to cents. */
  get total(): number {
    return Math.round(this.lines.reduce((sum, line) => sum + line.quantity * line.unitPrice, 0) * 100) / 100;
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
    if (line) Object.assign(line, { quantity: line.quantity + event.quantity, unitPrice: event.unitPrice });
    else this.lines.push({ sku: event.sku, quantity: event.quantity, unitPrice: event.unitPrice });
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

  private touch(context: EventContext): string {
    this.updatedAt = new Date(Math.floor(context.at / 1000)).toISOString();
    return this.updatedAt;
  }
}
