import { centsToAmount, countersDelta, nextOrderRow, parseDecimal, totalCents, type OrderEventTypes, type OrderRow } from './order-stats.model.js';

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
  it('adds to a line already there at the newest price, and totals exactly, rounding half up to a cent once', () => {
    const row = replay(
      event('OrderPlaced', 1, { customerId: 'c' }),
      event('LineAdded', 2, { sku: 'tea', quantity: 1, unitPrice: 3.1 }),
      event('LineAdded', 3, { sku: 'tea', quantity: 2, unitPrice: 3.3 }),
      event('LineAdded', 4, { sku: 'cup', quantity: 3, unitPrice: 0.335 }),
    );
    expect(row.lines.tea).toEqual({ quantity: 3, unitPrice: '3.3' });
    // 9.9 + 1.005 = 10.905 exactly: half a cent rounds up (binary doubles make it 10.904999…).
    expect(row.cents).toBe('1091');
    expect(row.version).toBe(4);
  });

  it('takes an order snapshot as the whole row: a truncated order counts from it as its events counted it', () => {
    const events = replay(
      event('OrderPlaced', 1, { customerId: 'c' }),
      event('LineAdded', 2, { sku: 'tea', quantity: 2, unitPriceCents: 250 }),
      event('LineAdded', 3, { sku: 'cup', quantity: 3, unitPrice: 0.335 }),
      event('OrderSubmitted', 4),
    );
    const state = { customerId: 'c', status: 'submitted', lines: [{ sku: 'tea', quantity: 2, unitPriceCents: 250 }, { sku: 'cup', quantity: 3, unitPrice: 0.335 }] };
    const snapped = replay(event('$snapshot', 5, state));
    expect({ ...snapped, lines: { ...snapped.lines } }).toEqual({ ...events, lines: { ...events.lines }, version: 5 });
    // On a row counted already, nothing moves; an erased order stays erased.
    expect(countersDelta(events, nextOrderRow(events, event('$snapshot', 5, state), types)!).statuses.size).toBe(0);
    expect(nextOrderRow({ ...events, erased: true }, event('$snapshot', 5, state), types)).toBeUndefined();
    expect(() => replay(event('$snapshot', 5, { ...state, status: 'lost' }))).toThrow(/status "lost"/);
  });

  it('keeps totals exact at the orders\' limits, where JavaScript numbers lose cents', () => {
    const big = replay(event('OrderPlaced', 1, { customerId: 'c' }), event('LineAdded', 2, { sku: 'a', quantity: 1_000_000, unitPrice: 1_000_000_000 }));
    const small = replay(event('OrderPlaced', 1, { customerId: 'c' }), event('LineAdded', 2, { sku: 'b', quantity: 1, unitPrice: 0.1 }));
    expect(big.cents).toBe('100000000000000000');
    expect(small.cents).toBe('10');
    const both = BigInt(big.cents) + BigInt(small.cents);
    expect(centsToAmount(both)).toBe('1000000000000000.10');
    expect(centsToAmount(both - BigInt(big.cents))).toBe('0.10');
    // The same sum in numbers, as the projection kept it before: 16 cents instead of 10.
    expect((1e17 + 10 - 1e17) / 100).not.toBe(0.1);
    const mixed = replay(
      event('OrderPlaced', 1, { customerId: 'c' }),
      event('LineAdded', 2, { sku: 'a', quantity: 1_000_000, unitPrice: 999_999_999.99 }),
      event('LineAdded', 3, { sku: 'b', quantity: 999_999, unitPrice: 0.01 }),
    );
    expect(mixed.cents).toBe((1_000_000n * 99_999_999_999n + 999_999n).toString());
  });

  it('reads prices as the decimals they were written as, exponent forms included', () => {
    expect(parseDecimal(0.1)).toEqual({ units: 1n, scale: 1 });
    expect(parseDecimal(1e-7)).toEqual({ units: 1n, scale: 7 });
    expect(parseDecimal(1e9)).toEqual({ units: 1_000_000_000n, scale: 0 });
    expect(() => parseDecimal(-1)).toThrow(/not a non-negative decimal/);
    expect(totalCents({ a: { quantity: 1, unitPrice: '0.004' } })).toBe(0n);
    expect(totalCents({ a: { quantity: 1, unitPrice: '0.005' } })).toBe(1n);
    // Rows written before exact money hold prices as numbers.
    expect(totalCents({ a: { quantity: 3, unitPrice: 0.1 } })).toBe(30n);
    expect(centsToAmount(-5n)).toBe('-0.05');
  });

  it('keeps SKUs that name Object.prototype members as lines, through a JSON round trip as the store makes', () => {
    let row = replay(event('OrderPlaced', 1, { customerId: 'c' }), event('LineAdded', 2, { sku: '__proto__', quantity: 2, unitPrice: 1 }));
    row = JSON.parse(JSON.stringify(row)) as OrderRow;
    row = nextOrderRow(row, event('LineAdded', 3, { sku: 'constructor', quantity: 1, unitPrice: 5 }), types)!;
    row = nextOrderRow(row, event('LineAdded', 4, { sku: '__proto__', quantity: 1, unitPrice: 1 }), types)!;
    expect(Object.keys(row.lines).sort()).toEqual(['__proto__', 'constructor']);
    expect(row.cents).toBe('800');
    row = nextOrderRow(row, event('LineRemoved', 5, { sku: '__proto__' }), types)!;
    expect(Object.keys(row.lines)).toEqual(['constructor']);
    expect(row.cents).toBe('500');
  });

  it('refuses an event of an order it never saw placed', () => {
    expect(() => nextOrderRow(undefined, event('OrderShipped', 3), types)).toThrow(/before it was placed/);
  });

  it('moves an order between statuses and counts revenue only for submitted and shipped orders', () => {
    const open = replay(event('OrderPlaced', 1, { customerId: 'c' }), event('LineAdded', 2, { sku: 'a', quantity: 1, unitPrice: 5 }));
    const submitted = nextOrderRow(open, event('OrderSubmitted', 3), types)!;
    const delta = countersDelta(open, submitted);
    expect(Object.fromEntries(delta.statuses)).toEqual({ open: { orders: -1, cents: -500n }, submitted: { orders: 1, cents: 500n } });
    expect(delta.customer).toEqual({ orders: 0, statuses: { open: -1, submitted: 1 }, revenueCents: 500n });
    const cancelled = nextOrderRow(submitted, event('OrderCancelled', 4), types)!;
    expect(countersDelta(submitted, cancelled).customer.revenueCents).toBe(-500n);
    const placed = countersDelta(undefined, replay(event('OrderPlaced', 1, { customerId: 'c' })));
    expect(placed.customer).toEqual({ orders: 1, statuses: { open: 1 }, revenueCents: 0n });
  });

  it('changes no counter for an event that changes neither status nor total', () => {
    const row = replay(event('OrderPlaced', 1, { customerId: 'c' }));
    const next = nextOrderRow(row, event('SomethingElse', 2), types)!;
    expect(next.version).toBe(2);
    const delta = countersDelta(row, next);
    expect(delta.statuses.size).toBe(0);
    expect(delta.customer).toEqual({ orders: 0, statuses: {}, revenueCents: 0n });
  });
});
