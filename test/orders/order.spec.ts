/*
 * The orders domain through given/when/then on the in-memory store (no Nest, no Cosmos DB): which events
 * each command stores, which it refuses and why, and the state the events add up to.
 */
import { describe, expect, it } from '@jest/globals';
import {
  AggregateAlreadyExistsError,
  AggregateNotFoundError,
  CommandRejectedError,
  CommandValidationError,
  InvalidStateError,
  AggregateRepository,
  type Command,
} from '../../src/index.js';
import { InMemoryEventStore, InMemoryOpaqueStore, given } from '../../src/testing.js';
import {
  AddLine,
  CancelOrder,
  LineAdded,
  LineRemoved,
  Order,
  OrderCancelled,
  OrderPlaced,
  OrderShipped,
  OrderSubmitted,
  PlaceOrder,
  RemoveLine,
  ShipOrder,
  SubmitOrder,
} from '../../example/src/modules/orders/index.js';

const ID = 'o-1';
const placed = new OrderPlaced('c-1');
const widget = new LineAdded('widget', 2, 500);
const open = [placed, widget];
const submitted = [...open, new OrderSubmitted()];
const shipped = [...submitted, new OrderShipped()];
const cancelled = [...open, new OrderCancelled()];

/** A repository on a fresh in-memory store, as the application wires it, to look at the state events build. */
function inMemoryRepository(): AggregateRepository<Order> {
  const opaque = new InMemoryOpaqueStore();
  const events = new InMemoryEventStore({ opaqueStore: opaque });
  return new AggregateRepository(Order, { events, aggregates: events, opaque }, { logger: { warn: () => undefined } });
}

/** Runs the commands in order and answers the order as loaded from its events. */
async function stateAfter(...commands: Command<Order>[]): Promise<Order> {
  const repository = inMemoryRepository();
  for (const command of commands) await repository.apply(command);
  return repository.load(commands[0].aggregateId);
}

describe('PlaceOrder', () => {
  it('places an open order for the customer', async () => {
    await given(Order).when(new PlaceOrder(ID, 'c-1')).then([new OrderPlaced('c-1')]);
    const order = await stateAfter(new PlaceOrder(ID, 'c-1'));
    expect(order).toMatchObject({ id: ID, customerId: 'c-1', status: 'open', lines: [], total: '0.00', version: 1 });
    expect(order.currentState()).toBe('open');
    expect(order.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(order.updatedAt).toBe(order.createdAt);
  });

  it('refuses to place an order that exists (AggregateAlreadyExistsError)', async () => {
    await given(Order, [placed]).when(new PlaceOrder(ID, 'c-2')).then(AggregateAlreadyExistsError);
    await given(Order, cancelled).when(new PlaceOrder(ID, 'c-1')).then(AggregateAlreadyExistsError);
  });

  it.each([
    ['an empty customerId', ''],
    ['a blank customerId', '   '],
    ['a missing customerId', undefined],
    ['a customerId that is not a string', 42],
    ['a customerId over 200 characters', 'c'.repeat(201)],
  ])('refuses %s (CommandValidationError naming customerId)', async (_what, customerId) => {
    const outcome = await given(Order)
      .when(new PlaceOrder(ID, customerId as string))
      .then(CommandValidationError);
    expect((outcome as { error: CommandValidationError }).error.problems.join()).toMatch(/customerId/);
  });

  it('refuses a blank order id', async () => {
    await given(Order).when(new PlaceOrder('  ', 'c-1')).then(CommandValidationError);
  });
});

describe('AddLine', () => {
  it('adds a line to an open order', async () => {
    await given(Order, [placed]).when(new AddLine(ID, 'widget', 2, 5)).then([new LineAdded('widget', 2, 500)]);
  });

  it('accepts a free line (unit price 0)', async () => {
    await given(Order, [placed]).when(new AddLine(ID, 'gift', 1, 0)).then([new LineAdded('gift', 1, 0)]);
  });

  it.each([
    ['quantity 0', 'widget', 0, 5, /quantity/],
    ['a negative quantity', 'widget', -1, 5, /quantity/],
    ['a fractional quantity', 'widget', 1.5, 5, /quantity/],
    ['a quantity that is a string', 'widget', '2', 5, /quantity/],
    ['a NaN quantity', 'widget', NaN, 5, /quantity/],
    ['a quantity over a million', 'widget', 1_000_001, 5, /quantity/],
    ['a negative unit price', 'widget', 1, -0.01, /unitPrice/],
    ['a unit price over a billion', 'widget', 1, 1e300, /unitPrice/],
    ['an infinite unit price', 'widget', 1, Infinity, /unitPrice/],
    ['a unit price that is a string', 'widget', 1, '5', /unitPrice/],
    ['a fraction of a cent', 'widget', 1, 0.123, /whole number of cents/],
    ['a NaN unit price', 'widget', 1, NaN, /unitPrice/],
    ['an empty sku', '', 1, 5, /sku/],
    ['a blank sku', ' ', 1, 5, /sku/],
  ])('refuses %s (CommandValidationError)', async (_what, sku, quantity, unitPrice, problem) => {
    const outcome = await given(Order, [placed])
      .when(new AddLine(ID, sku, quantity as number, unitPrice as number))
      .then(CommandValidationError);
    expect((outcome as { error: CommandValidationError }).error.problems.join()).toMatch(problem);
  });

  it('rejects a line whose summed quantity would pass a million (CommandRejectedError)', async () => {
    await given(Order, [placed, new LineAdded('widget', 999_999, 100)])
      .when(new AddLine(ID, 'widget', 2, 1))
      .then(CommandRejectedError);
    await given(Order, [placed, new LineAdded('widget', 999_999, 100)]).when(new AddLine(ID, 'widget', 1, 1)).then([new LineAdded('widget', 1, 100)]);
  });

  it('lists every problem of the input at once', async () => {
    const outcome = await given(Order, [placed]).when(new AddLine(ID, '', 0, -1)).then(CommandValidationError);
    expect((outcome as { error: CommandValidationError }).error.problems).toHaveLength(3);
  });

  it('adds the quantity of a sku already on the order, at the newest price, as one line', async () => {
    await given(Order, open).when(new AddLine(ID, 'widget', 3, 6)).then([new LineAdded('widget', 3, 600)]);
    const order = await stateAfter(
      new PlaceOrder(ID, 'c-1'),
      new AddLine(ID, 'widget', 2, 5),
      new AddLine(ID, 'gadget', 1, 10),
      new AddLine(ID, 'widget', 3, 6),
    );
    expect(order.lines).toEqual([
      { sku: 'widget', quantity: 5, unitPriceCents: 600 },
      { sku: 'gadget', quantity: 1, unitPriceCents: 1000 },
    ]);
    expect(order.total).toBe('40.00');
    expect(order.version).toBe(4);
  });

  it('is refused after submit, ship and cancel (InvalidStateError)', async () => {
    for (const past of [submitted, shipped, cancelled]) {
      await given(Order, past).when(new AddLine(ID, 'gadget', 1, 1)).then(InvalidStateError);
    }
  });

  it('checks the input before the state', async () => {
    await given(Order, submitted).when(new AddLine(ID, 'gadget', 0, 1)).then(CommandValidationError);
  });
});

describe('RemoveLine', () => {
  it('removes a line that is on the order', async () => {
    await given(Order, open).when(new RemoveLine(ID, 'widget')).then([new LineRemoved('widget')]);
    const order = await stateAfter(
      new PlaceOrder(ID, 'c-1'),
      new AddLine(ID, 'widget', 2, 5),
      new AddLine(ID, 'gadget', 1, 10),
      new RemoveLine(ID, 'widget'),
    );
    expect(order.lines).toEqual([{ sku: 'gadget', quantity: 1, unitPriceCents: 1000 }]);
    expect(order.total).toBe('10.00');
  });

  it('skips a sku that is not on the order: no events, version unchanged', async () => {
    expect(await given(Order, open).when(new RemoveLine(ID, 'gadget')).outcome()).toEqual({ version: open.length, events: [] });
    expect(await given(Order, [placed]).when(new RemoveLine(ID, 'widget')).outcome()).toEqual({ version: 1, events: [] });
    // Removed already: a repeated removal changes nothing.
    expect(await given(Order, [...open, new LineRemoved('widget')]).when(new RemoveLine(ID, 'widget')).outcome()).toEqual({
      version: 3,
      events: [],
    });
  });

  it('starts afresh when a removed sku is added again', async () => {
    const order = await stateAfter(
      new PlaceOrder(ID, 'c-1'),
      new AddLine(ID, 'widget', 2, 5),
      new RemoveLine(ID, 'widget'),
      new AddLine(ID, 'widget', 1, 7),
    );
    expect(order.lines).toEqual([{ sku: 'widget', quantity: 1, unitPriceCents: 700 }]);
  });

  it('refuses an empty sku (CommandValidationError)', async () => {
    await given(Order, open).when(new RemoveLine(ID, '')).then(CommandValidationError);
  });

  it('is refused after submit, ship and cancel, even for a sku that is not there', async () => {
    for (const past of [submitted, shipped, cancelled]) {
      await given(Order, past).when(new RemoveLine(ID, 'widget')).then(InvalidStateError);
      await given(Order, past).when(new RemoveLine(ID, 'nothing')).then(InvalidStateError);
    }
  });
});

describe('SubmitOrder', () => {
  it('submits an open order with lines', async () => {
    await given(Order, open).when(new SubmitOrder(ID)).then([new OrderSubmitted()]);
    expect((await stateAfter(new PlaceOrder(ID, 'c-1'), new AddLine(ID, 'w', 1, 1), new SubmitOrder(ID))).status).toBe('submitted');
  });

  it('rejects an order without lines (CommandRejectedError)', async () => {
    await given(Order, [placed]).when(new SubmitOrder(ID)).then(CommandRejectedError);
    await given(Order, [...open, new LineRemoved('widget')]).when(new SubmitOrder(ID)).then(CommandRejectedError);
  });

  it('is refused when submitted, shipped or cancelled (InvalidStateError)', async () => {
    for (const past of [submitted, shipped, cancelled]) await given(Order, past).when(new SubmitOrder(ID)).then(InvalidStateError);
  });
});

describe('ShipOrder', () => {
  it('ships a submitted order', async () => {
    await given(Order, submitted).when(new ShipOrder(ID)).then([new OrderShipped()]);
  });

  it('is refused before submit, twice, and after cancel (InvalidStateError)', async () => {
    for (const past of [[placed], open, shipped, cancelled, [...submitted, new OrderCancelled()]]) {
      await given(Order, past).when(new ShipOrder(ID)).then(InvalidStateError);
    }
  });
});

describe('CancelOrder', () => {
  it('cancels an open or submitted order', async () => {
    await given(Order, [placed]).when(new CancelOrder(ID)).then([new OrderCancelled()]);
    await given(Order, submitted).when(new CancelOrder(ID)).then([new OrderCancelled()]);
    expect((await stateAfter(new PlaceOrder(ID, 'c-1'), new CancelOrder(ID))).status).toBe('cancelled');
  });

  it('is refused after ship and after cancel (InvalidStateError)', async () => {
    await given(Order, shipped).when(new CancelOrder(ID)).then(InvalidStateError);
    await given(Order, cancelled).when(new CancelOrder(ID)).then(InvalidStateError);
  });
});

describe('an order that does not exist', () => {
  it.each([
    ['AddLine', new AddLine(ID, 'widget', 1, 1)],
    ['AddLine with invalid input', new AddLine(ID, '', 0, -1)],
    ['RemoveLine', new RemoveLine(ID, 'widget')],
    ['SubmitOrder', new SubmitOrder(ID)],
    ['ShipOrder', new ShipOrder(ID)],
    ['CancelOrder', new CancelOrder(ID)],
  ])('%s fails with AggregateNotFoundError', async (_what, command) => {
    await given(Order).when(command).then(AggregateNotFoundError);
  });
});

describe('total', () => {
  it('is the sum of quantity × unit price, exact in cents', async () => {
    // 3 × 0.1 + 0.2 is 0.5000000000000001 in floating point.
    const order = await stateAfter(new PlaceOrder(ID, 'c-1'), new AddLine(ID, 'a', 3, 0.1), new AddLine(ID, 'b', 1, 0.2));
    expect(order.total).toBe('0.50');
  });

  it('stores prices in whole cents, so totals are exact', async () => {
    const order = await stateAfter(new PlaceOrder(ID, 'c-1'), new AddLine(ID, 'a', 7, 19.99), new AddLine(ID, 'b', 1, 1.2));
    expect(order.lines).toEqual([
      { sku: 'a', quantity: 7, unitPriceCents: 1999 },
      { sku: 'b', quantity: 1, unitPriceCents: 120 },
    ]);
    expect(order.totalCents).toBe(14113n);
    expect(order.total).toBe('141.13');
    await given(Order, [placed]).when(new AddLine(ID, 'a', 1, 0.29)).then([new LineAdded('a', 1, 29)]);
  });

  it('follows removals and repeated skus', async () => {
    const order = await stateAfter(
      new PlaceOrder(ID, 'c-1'),
      new AddLine(ID, 'a', 2, 1.1),
      new AddLine(ID, 'b', 1, 2.2),
      new AddLine(ID, 'a', 1, 1.1),
      new RemoveLine(ID, 'b'),
    );
    expect(order.total).toBe('3.30');
  });
});

describe('an order longer than its snapshot interval (100 versions)', () => {
  it('loads the same state from the snapshot, and commands still see lines added before it', async () => {
    const repository = inMemoryRepository();
    await repository.apply(new PlaceOrder(ID, 'c-1'));
    for (let i = 0; i < 104; i++) await repository.apply(new AddLine(ID, `sku-${i}`, 1, 1 + (i % 3)));
    // A line from before the snapshot is still there to remove, and removing one not there is still a skip.
    const version = await repository.apply(new RemoveLine(ID, 'sku-0'));
    expect(await repository.apply(new RemoveLine(ID, 'sku-0'))).toBe(version);
    const order = await repository.load(ID);
    expect(order).toMatchObject({ id: ID, customerId: 'c-1', status: 'open', version });
    expect(order.lines).toHaveLength(103);
    expect(order.lines[0]).toEqual({ sku: 'sku-1', quantity: 1, unitPriceCents: 200 });
    expect(order.total).toBe('206.00');
    // The history is the domain events only: no snapshot record among them.
    const history = await repository.history(ID);
    expect(history).toHaveLength(106);
    expect(new Set(history.map((e) => e.type))).toEqual(new Set(['OrderPlaced', 'LineAdded', 'LineRemoved']));
    expect((await repository.get(ID)).lines).toEqual(order.lines);
  });
});

describe('the full life of an order', () => {
  it('goes open → submitted → shipped, and every command left one event', async () => {
    const repository = inMemoryRepository();
    expect(await repository.apply(new PlaceOrder(ID, 'c-1'))).toBe(1);
    expect(await repository.apply(new AddLine(ID, 'widget', 2, 5))).toBe(2);
    expect(await repository.apply(new SubmitOrder(ID))).toBe(3);
    expect(await repository.apply(new ShipOrder(ID))).toBe(4);
    expect((await repository.history(ID)).map((e) => e.type)).toEqual(['OrderPlaced', 'LineAdded', 'OrderSubmitted', 'OrderShipped']);
    // The materialized order matches the one loaded from events.
    const materialized = await repository.get(ID);
    expect(materialized).toMatchObject({ status: 'shipped', version: 4, total: '10.00', customerId: 'c-1' });
    expect(materialized.lines).toEqual([{ sku: 'widget', quantity: 2, unitPriceCents: 500 }]);
  });
});
