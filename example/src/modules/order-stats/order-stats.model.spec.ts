import { countersDelta, nextOrderRow, type OrderEventTypes, type OrderRow } from './order-stats.model.js';

const types: OrderEventTypes = {
  placed: 'OrderPlaced',
  lineAdded: 'LineAdded',
  lineRemoved: 'LineRemoved',
  submitted: 'OrderSubmitted',
  shipped: 'OrderShipped',
  cancelled: 'OrderCancelled',
};
const event = (type: string, version: number, payload: unknown = {}) => ({ type, aggregateId: 'o-1', version, payload });

function replay(...events: Array<ReturnType<typeof event>>): OrderRow {
  let row: OrderRow | undefined;
  for (const e of events) row = nextOrderRow(row, e, types);
  return row!;
}

describe('order rows', () => {
  it('adds to a line already there at the newest price, and totals in cents as Order.total rounds', () => {
    const row = replay(
      event('OrderPlaced', 1, { customerId: 'c' }),
      event('LineAdded', 2, { sku: 'tea', quantity: 1, unitPrice: 3.1 }),
      event('LineAdded', 3, { sku: 'tea', quantity: 2, unitPrice: 3.3 }),
      event('LineAdded', 4, { sku: 'cup', quantity: 3, unitPrice: 0.335 }),
    );
    expect(row.lines.tea).toEqual({ quantity: 3, unitPrice: 3.3 });
    expect(row.cents).toBe(Math.round((3 * 3.3 + 3 * 0.335) * 100));
    expect(row.version).toBe(4);
  });

  it('keeps SKUs that name Object.prototype members as lines, through a JSON round trip as the store makes', () => {
    let row = replay(event('OrderPlaced', 1, { customerId: 'c' }), event('LineAdded', 2, { sku: '__proto__', quantity: 2, unitPrice: 1 }));
    row = JSON.parse(JSON.stringify(row)) as OrderRow;
    row = nextOrderRow(row, event('LineAdded', 3, { sku: 'constructor', quantity: 1, unitPrice: 5 }), types)!;
    row = nextOrderRow(row, event('LineAdded', 4, { sku: '__proto__', quantity: 1, unitPrice: 1 }), types)!;
    expect(Object.keys(row.lines).sort()).toEqual(['__proto__', 'constructor']);
    expect(row.cents).toBe(800);
    row = nextOrderRow(row, event('LineRemoved', 5, { sku: '__proto__' }), types)!;
    expect(Object.keys(row.lines)).toEqual(['constructor']);
    expect(row.cents).toBe(500);
  });

  it('refuses an event of an order it never saw placed', () => {
    expect(() => nextOrderRow(undefined, event('OrderShipped', 3), types)).toThrow(/before it was placed/);
  });

  it('moves an order between statuses and counts revenue only for submitted and shipped orders', () => {
    const open = replay(event('OrderPlaced', 1, { customerId: 'c' }), event('LineAdded', 2, { sku: 'a', quantity: 1, unitPrice: 5 }));
    const submitted = nextOrderRow(open, event('OrderSubmitted', 3), types)!;
    const delta = countersDelta(open, submitted);
    expect(Object.fromEntries(delta.statuses)).toEqual({ open: { orders: -1, cents: -500 }, submitted: { orders: 1, cents: 500 } });
    expect(delta.customer).toEqual({ orders: 0, statuses: { open: -1, submitted: 1 }, revenueCents: 500 });
    const cancelled = nextOrderRow(submitted, event('OrderCancelled', 4), types)!;
    expect(countersDelta(submitted, cancelled).customer.revenueCents).toBe(-500);
    const placed = countersDelta(undefined, replay(event('OrderPlaced', 1, { customerId: 'c' })));
    expect(placed.customer).toEqual({ orders: 1, statuses: { open: 1 }, revenueCents: 0 });
  });

  it('changes no counter for an event that changes neither status nor total', () => {
    const row = replay(event('OrderPlaced', 1, { customerId: 'c' }));
    const next = nextOrderRow(row, event('SomethingElse', 2), types)!;
    expect(next.version).toBe(2);
    const delta = countersDelta(row, next);
    expect(delta.statuses.size).toBe(0);
    expect(delta.customer).toEqual({ orders: 0, statuses: {}, revenueCents: 0 });
  });
});
