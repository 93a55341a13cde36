/*
 * The order statistics' model of an erasure: the tombstone ('$stream-deleted') takes an order out of every
 * counter once; a redelivered tombstone, one of an order never counted, and events after it change nothing.
 */
import { describe, expect, it } from '@jest/globals';
import { STREAM_DELETED_TYPE } from '../../src/index.js';
import { countersDelta, nextOrderRow, type OrderEventTypes, type OrderRow } from '../../example/src/modules/order-stats/order-stats.model.js';

const types: OrderEventTypes = {
  placed: 'OrderPlaced',
  lineAdded: 'LineAdded',
  lineRemoved: 'LineRemoved',
  submitted: 'OrderSubmitted',
  shipped: 'OrderShipped',
  cancelled: 'OrderCancelled',
};
const event = (type: string, version: number, payload: unknown = {}) => ({ type, aggregateId: 'o-1', version, payload });

function replay(...events: Array<ReturnType<typeof event>>): OrderRow | undefined {
  let row: OrderRow | undefined;
  for (const e of events) row = nextOrderRow(row, e, types) ?? row;
  return row;
}

describe('an erased order', () => {
  const submitted = replay(
    event('OrderPlaced', 1, { customerId: 'c' }),
    event('LineAdded', 2, { sku: 'tea', quantity: 2, unitPriceCents: 250 }),
    event('OrderSubmitted', 3),
  )!;

  it('leaves every counter: its status, its customer and the revenue it counted', () => {
    const erased = nextOrderRow(submitted, event(STREAM_DELETED_TYPE, 4), types)!;
    expect(erased).toMatchObject({ erased: true, version: 4, cents: '0', lines: {}, customerId: 'c' });
    const delta = countersDelta(submitted, erased);
    expect([...delta.statuses]).toEqual([['submitted', { orders: -1, cents: -500n }]]);
    expect(delta.customer).toEqual({ orders: -1, statuses: { submitted: -1 }, revenueCents: -500n });
  });

  it('changes nothing more: a second tombstone, a later event, or a tombstone of an order never counted', () => {
    const erased = nextOrderRow(submitted, event(STREAM_DELETED_TYPE, 4), types)!;
    expect(nextOrderRow(erased, event(STREAM_DELETED_TYPE, 5), types)).toBeUndefined();
    expect(nextOrderRow(erased, event('OrderShipped', 5), types)).toBeUndefined();
    expect(nextOrderRow(undefined, event(STREAM_DELETED_TYPE, 2), types)).toBeUndefined();
  });
});

