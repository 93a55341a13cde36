/*
 * Issue 16 part 4, shown on the orders example: a line's price moved from a number (`unitPrice: 12.5`) to
 * integer cents (LineAdded v2, Order state schema version 2). The fixture holds the exact records the code
 * before the change stored (captured with its repository and JsonEventSerializer, v1 envelopes without
 * metadata, a gzipped snapshot of the old state at version 100): they still load with the right totals, on
 * the in-memory stores and on the embedded server, and reading them never rewrites a byte.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import {
  CosmosEventStore,
  CosmosOpaqueStore,
  JsonEventSerializer,
  AggregateRepository,
  type AggregateStore,
  type OpaqueStore,
  type SnapshotTailStore,
} from '../../src/index.js';
import { InMemoryEventStore, InMemoryOpaqueStore } from '../../src/testing.js';
import { AddLine, LineAdded, Order, SubmitOrder } from '../../example/src/modules/orders/index.js';
import { toHistoryEventDto, toOrderDto } from '../../example/src/modules/orders/orders.dto.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';

interface FixtureOrder {
  total: number;
  version: number;
  lines: Array<{ sku: string; quantity: number; unitPrice: number }>;
  records: Array<{ version: number; data: string }>;
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/orders-v1-envelopes.json', import.meta.url), 'utf8')) as Record<'o-1' | 'o-long', FixtureOrder>;

interface Stores {
  events: SnapshotTailStore & AggregateStore;
  opaque: OpaqueStore;
}

let cosmos: CosmosFixture;
beforeAll(async () => {
  cosmos = await startCosmosFixture();
});
afterAll(() => cosmos?.close());

const suites: Array<[string, () => Stores]> = [
  [
    'in-memory stores',
    () => {
      const opaque = new InMemoryOpaqueStore();
      return { events: new InMemoryEventStore({ opaqueStore: opaque }), opaque };
    },
  ],
  [
    'Cosmos DB stores on the embedded server',
    () => {
      const opaque = new CosmosOpaqueStore(cosmos.aggregates);
      return { events: new CosmosEventStore(cosmos.events, { opaqueStore: opaque }), opaque };
    },
  ],
];

describe.each(suites)('orders written before prices moved to cents (%s)', (_name, makeStores) => {
  /** A repository over fresh stores holding the fixture's records of `which` under a fresh order id. */
  async function withOldOrder(which: 'o-1' | 'o-long'): Promise<{ id: string; orders: AggregateRepository<Order>; stores: Stores; stored: () => Promise<string[]> }> {
    const stores = makeStores();
    const orders = new AggregateRepository(Order, { events: stores.events, aggregates: stores.events, opaque: stores.opaque }, { logger: { warn: () => undefined } });
    const id = `old-${randomUUID()}`;
    // The envelopes name the fixture's id inside; the stream id is what the store keys them by.
    await stores.events.save(
      orders.streamId(id),
      fixture[which].records.map((r) => ({ version: r.version, data: Buffer.from(r.data, 'base64') })),
    );
    const stored = async () => (await stores.events.load(orders.streamId(id))).records.map((r) => Buffer.from(r.data).toString('base64'));
    return { id, orders, stores, stored };
  }

  it('loads the README walkthrough order with its old total, prices now in cents', async () => {
    const { id, orders, stored } = await withOldOrder('o-1');
    const order = await orders.load(id);
    expect(order.total).toBe(fixture['o-1'].total.toFixed(2));
    expect(order.total).toBe('25.00');
    expect(order.lines).toEqual([{ sku: 'book', quantity: 2, unitPriceCents: 1250 }]);
    expect(order).toMatchObject({ status: 'submitted', version: 5, customerId: 'c-1' });
    // The HTTP API shows the same order it showed before the change.
    expect(toOrderDto(order).lines).toEqual(fixture['o-1'].lines);
    // Reads never rewrite the stored bytes.
    expect(await stored()).toEqual(fixture['o-1'].records.map((r) => r.data));
  });

  it('passes the old-shape snapshot over and replays 105 events to the right total', async () => {
    const { id, orders, stored } = await withOldOrder('o-long');
    // The fixture's snapshot at version 100 was taken at state schema version 1 (it says none).
    const snapshot = new JsonEventSerializer().deserializeStored(Buffer.from(fixture['o-long'].records[99].data, 'base64'));
    expect(snapshot).toMatchObject({ type: '$snapshot', version: 100 });
    expect(snapshot.schemaVersion).toBeUndefined();
    expect(JSON.stringify(snapshot.payload)).toContain('"unitPrice"');
    const order = await orders.load(id);
    expect(order.version).toBe(105);
    expect(order.total).toBe(fixture['o-long'].total.toFixed(2));
    for (const line of order.lines) expect(Number.isSafeInteger(line.unitPriceCents)).toBe(true);
    // The same lines, their prices as whole cents (the old state kept float noise such as 1.4000000000000001).
    expect(toOrderDto(order).lines).toEqual(fixture['o-long'].lines.map((l) => ({ ...l, unitPrice: Math.round(l.unitPrice * 100) / 100 })));
    expect(await stored()).toEqual(fixture['o-long'].records.map((r) => r.data));
  });

  it('shows old events in history as today\'s classes, without metadata they never had', async () => {
    const { id, orders } = await withOldOrder('o-1');
    const history = await orders.history(id);
    expect(history.map((e) => e.type)).toEqual(['OrderPlaced', 'LineAdded', 'LineAdded', 'LineRemoved', 'OrderSubmitted']);
    expect(history[1].event).toBeInstanceOf(LineAdded);
    expect(history[1].event).toEqual({ sku: 'book', quantity: 2, unitPriceCents: 1250 });
    expect(history[2].event).toEqual({ sku: 'pen', quantity: 1, unitPriceCents: 120 });
    expect(history[0].eventId).toBeUndefined();
    // As GET /orders/:id/history answers it: the price as the API takes it, as before.
    expect(toHistoryEventDto(history[1])).toMatchObject({ type: 'LineAdded', sku: 'book', quantity: 2, unitPrice: 12.5 });
  });

  it('takes new commands on an old order: new events in cents beside the old, totals still exact', async () => {
    const { id, orders, stores } = await withOldOrder('o-long');
    await orders.apply(new AddLine(id, 'cup', 1, 0.71));
    const order = await orders.load(id);
    expect(order.version).toBe(106);
    // The cup line (3 × 0.29 before) now holds 4 at the newest price, 0.71.
    expect(order.totalCents).toBe(BigInt(Math.round(fixture['o-long'].total * 100) - 3 * 29 + 4 * 71));
    expect(order.line('cup')).toEqual({ sku: 'cup', quantity: 4, unitPriceCents: 71 });
    const newest = new JsonEventSerializer().deserializeStored((await stores.events.loadTail(orders.streamId(id), 1)).records[0].data);
    expect(newest).toMatchObject({ type: 'LineAdded', schemaVersion: 2, payload: { sku: 'cup', quantity: 1, unitPriceCents: 71 } });
    await orders.apply(new SubmitOrder(id));
    expect((await orders.get(id)).total).toBe(order.total);
  });

  it('reads a materialized document of the old shape (lines with unitPrice) in cents', async () => {
    const { id, orders, stores } = await withOldOrder('o-1');
    const old = fixture['o-1'];
    // The document today's code materialized: the state's JSON with `$type`, lines priced in numbers.
    await stores.events.saveAggregate({
      keys: () => ({ pk: id, sk: 'Order', gsi: { 1: { pk: 'c-1', sk: '2026-01-01T00:00:00.000Z' }, 2: { pk: 'submitted', sk: '2026-01-01T00:00:00.000Z' } } }),
      version: old.version,
      toJSON: () => ({ id, version: old.version, customerId: 'c-1', status: 'submitted', lines: old.lines, createdAt: '', updatedAt: '', $type: 'Order' }),
    } as never);
    const order = await orders.get(id);
    expect(order.lines).toEqual([{ sku: 'book', quantity: 2, unitPriceCents: 1250 }]);
    expect(order.total).toBe('25.00');
  });
});
