import { Command, type Evaluation } from 'nest-cosmos-eventstore';
import { hasControlCharacter } from '../../http/request-input.js';
import { Order } from './order.aggregate.js';
import { LineAdded, LineRemoved, OrderCancelled, OrderPlaced, OrderShipped, OrderSubmitted, toCents } from './order.events.js';

const MAX_TEXT = 200;
// Bounds that keep every total an exact, finite number (a product decision; widen with care).
const MAX_QUANTITY = 1_000_000;
const MAX_UNIT_PRICE = 1_000_000_000;


/**
 * A name-like text field: a non-empty string of at most 200 characters, well-formed Unicode (a lone
 * surrogate has no UTF-8 form: Cosmos DB keys refuse it, so the order could not be materialized and its
 * statistics could not count it) and without control characters (`hasControlCharacter`).
 */
function checkText(field: string, value: unknown): string[] {
  if (typeof value !== 'string' || value.trim() === '') return [`${field} must be a non-empty string`];
  if (value.length > MAX_TEXT) return [`${field} must be at most ${MAX_TEXT} characters`];
  if (!value.isWellFormed()) return [`${field} must be well-formed Unicode (no lone surrogates)`];
  if (hasControlCharacter(value)) return [`${field} must not contain control characters`];
  return [];
}

export class PlaceOrder extends Command<Order> {
  readonly lifecycle = 'create';

  constructor(
    readonly aggregateId: string,
    readonly customerId: string,
  ) {
    super();
  }

  /**
   * What is wrong with an order id, checked before the repository sees it: it reads the stream by id before
   * it asks the command, and would refuse a bad one as its own key (`aggregateId`, `id`) rather than as 422.
   */
  static idProblems(orderId: unknown): string[] {
    return checkText('orderId', orderId);
  }

  override validate(): string[] {
    return [...PlaceOrder.idProblems(this.aggregateId), ...checkText('customerId', this.customerId)];
  }

  emit(): OrderPlaced {
    return new OrderPlaced(this.customerId);
  }
}

/** Adds a line; `unitPrice` is in currency units as the HTTP API takes it (`12.5`), stored in cents. */
export class AddLine extends Command<Order> {
  readonly lifecycle = 'mutate';
  override readonly allowedStates = ['open'];

  constructor(
    readonly aggregateId: string,
    readonly sku: string,
    readonly quantity: number,
    readonly unitPrice: number,
  ) {
    super();
  }

  override validate(): string[] {
    const problems = checkText('sku', this.sku);
    if (!Number.isSafeInteger(this.quantity) || this.quantity <= 0 || this.quantity > MAX_QUANTITY) {
      problems.push(`quantity must be a positive integer of at most ${MAX_QUANTITY}`);
    }
    if (typeof this.unitPrice !== 'number' || !Number.isFinite(this.unitPrice) || this.unitPrice < 0 || this.unitPrice > MAX_UNIT_PRICE) {
      problems.push(`unitPrice must be a number from 0 to ${MAX_UNIT_PRICE}`);
    } else if (Math.abs(this.unitPrice * 100 - toCents(this.unitPrice)) > 1e-6) {
      // Stored in integer cents: a fraction of a cent would be rounded away, so it is refused instead.
      problems.push('unitPrice must be a whole number of cents (at most 2 decimals)');
    }
    return problems;
  }

  /** The same SKU again adds to its quantity, which stays within the same bound. */
  override evaluate(order: Order): Evaluation {
    const quantity = (order.line(this.sku)?.quantity ?? 0) + this.quantity;
    return quantity > MAX_QUANTITY ? { reject: `${this.sku} would reach quantity ${quantity}; at most ${MAX_QUANTITY}` } : 'proceed';
  }

  emit(): LineAdded {
    return new LineAdded(this.sku, this.quantity, toCents(this.unitPrice));
  }
}

export class RemoveLine extends Command<Order> {
  readonly lifecycle = 'mutate';
  override readonly allowedStates = ['open'];

  constructor(
    readonly aggregateId: string,
    readonly sku: string,
  ) {
    super();
  }

  override validate(): string[] {
    return checkText('sku', this.sku);
  }

  /** Removing a line that is not there changes nothing: a repeated DELETE succeeds without an event. */
  override evaluate(order: Order): Evaluation {
    return order.line(this.sku) ? 'proceed' : 'skip';
  }

  emit(): LineRemoved {
    return new LineRemoved(this.sku);
  }
}

export class SubmitOrder extends Command<Order> {
  readonly lifecycle = 'mutate';
  override readonly allowedStates = ['open'];

  constructor(readonly aggregateId: string) {
    super();
  }

  override evaluate(order: Order): Evaluation {
    return order.lines.length === 0 ? { reject: 'an order without lines cannot be submitted' } : 'proceed';
  }

  emit(): OrderSubmitted {
    return new OrderSubmitted();
  }
}

export class ShipOrder extends Command<Order> {
  readonly lifecycle = 'mutate';
  override readonly allowedStates = ['submitted'];

  constructor(readonly aggregateId: string) {
    super();
  }

  emit(): OrderShipped {
    return new OrderShipped();
  }
}

export class CancelOrder extends Command<Order> {
  readonly lifecycle = 'mutate';
  override readonly allowedStates = ['open', 'submitted'];

  constructor(readonly aggregateId: string) {
    super();
  }

  emit(): OrderCancelled {
    return new OrderCancelled();
  }
}
