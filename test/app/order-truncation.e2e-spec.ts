/*
 * Truncating an order's stream in the orders service without stopping the statistics: the raw stream route
 * refuses (409) a cut of a repository's stream that would leave it starting with an event (order-stats, rebuilt
 * from the change feed, would meet LineAdded before OrderPlaced and stop for good); POST /admin/orders/:id/truncate
 * snapshots the order first and cuts there, and a rebuild afterwards counts the order from its snapshot, to the
 * same numbers. The real AppModule on the embedded server, with an ADMIN_TOKEN.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { CapturingLogger, startService, type ServiceUnderTest } from '../support/app.js';

const TOKEN = `t-${randomUUID()}`;
const ADMIN = { Authorization: `Bearer ${TOKEN}` };
const logger = new CapturingLogger();
let service: ServiceUnderTest;
let http: ServiceUnderTest['http'];

beforeAll(async () => {
  service = await startService({ COSMOS_DATABASE: `truncation-${randomUUID()}`, ADMIN_TOKEN: TOKEN }, logger);
  http = service.http;
});

afterAll(() => service?.close());

type Stats = { byStatus: Record<string, { orders: number; total: string }>; customers: unknown[] };

/** `/order-stats` once nothing is pending and `check` holds; a 503 (the subscriber stopped) fails at once. */
async function settled(check: (stats: Stats) => boolean): Promise<Stats> {
  for (let tries = 0; ; tries++) {
    const res = await request(http).get('/order-stats');
    expect(res.status).not.toBe(503);
    if (res.status === 200 && !res.body.stale) {
      const { byStatus, customers } = res.body as Stats;
      if (check({ byStatus, customers })) return { byStatus, customers };
    }
    if (tries > 300) throw new Error(`the statistics never settled: ${res.status} ${JSON.stringify(res.body)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('truncating an order', () => {
  it('keeps the statistics through a rebuild: the raw cut is refused, the order route snapshots first', async () => {
    const customerId = `c-${randomUUID()}`;
    const id = (await request(http).post('/orders').send({ customerId }).expect(201)).body.id as string;
    await request(http).post(`/orders/${id}/lines`).send({ sku: 'tea', quantity: 2, unitPrice: 2.5 }).expect(200);
    await request(http).post(`/orders/${id}/lines`).send({ sku: 'cake', quantity: 1, unitPrice: 1.25 }).expect(200);
    await request(http).post(`/orders/${id}/submit`).expect(200);
    const open = (await request(http).post('/orders').send({ customerId }).expect(201)).body.id as string;
    const before = await settled((s) => s.byStatus.submitted.orders === 1 && s.byStatus.open.orders === 1);
    expect(before.byStatus.submitted.total).toBe('6.25');

    // The cut the report made: version 3 (a LineAdded) would be the first record left.
    const refused = await request(http).post(`/admin/streams/Order%2F${id}/truncate?before=3`).set(ADMIN).expect(409);
    expect(refused.body).toMatchObject({ statusCode: 409, field: 'before' });
    expect(refused.body.message).toMatch(/Order aggregate.*not a snapshot.*POST \/admin\/orders\/:id\/truncate/);
    expect(((await request(http).get(`/orders/${id}/history`).expect(200)).body.events as unknown[]).length).toBe(4);

    await request(http).post(`/admin/orders/${id}/truncate`).expect(401);
    await request(http).post(`/admin/orders/${id}/truncate`).set(ADMIN).expect(200, { truncated: true, firstVersion: 5 });
    const order = (await request(http).get(`/orders/${id}`).expect(200)).body as { version: number; total: string; status: string };
    expect(order).toMatchObject({ version: 5, total: '6.25', status: 'submitted' });
    expect((await request(http).get(`/orders/${id}/history`).expect(200)).body.events).toEqual([]);
    const records = (await request(http).get(`/aggregates/Order%2F${id}/events`).set(ADMIN).expect(200)).body.records as Array<{ version: number }>;
    expect(records.map((r) => r.version)).toEqual([5]);
    // The live subscriber took the snapshot too, and nothing moved.
    expect(await settled(() => true)).toEqual(before);

    await request(http).post('/admin/projections/order-stats/rebuild').set(ADMIN).expect(202);
    expect(await settled((s) => JSON.stringify(s) === JSON.stringify(before))).toEqual(before);
    await request(http).get('/health').expect(200);

    // Later commands are counted on top of the snapshot; a raw cut at the snapshot is no harm and is let through.
    await request(http).post(`/orders/${id}/ship`).expect(200);
    await request(http).post(`/admin/streams/Order%2F${id}/truncate?before=5`).set(ADMIN).expect(200, { truncated: true });
    await request(http).post(`/admin/streams/Order%2F${open}/truncate?before=1`).set(ADMIN).expect(200);
    const shipped = await settled((s) => s.byStatus.shipped.orders === 1);
    expect([shipped.byStatus.shipped.total, shipped.byStatus.submitted.orders, shipped.byStatus.open.orders]).toEqual(['6.25', 0, 1]);
    await request(http).post('/admin/projections/order-stats/rebuild').set(ADMIN).expect(202);
    expect(await settled((s) => JSON.stringify(s) === JSON.stringify(shipped))).toEqual(shipped);
    await request(http).post(`/admin/orders/nope-${randomUUID()}/truncate`).set(ADMIN).expect(404);
  });

  it("refuses a cut of a protosource order's stream at an event too; raw streams are cut as before", async () => {
    const id = `p-${randomUUID()}`;
    const json = { 'Content-Type': 'application/json', Accept: 'application/json' };
    await request(http).post('/example/app/order/v1/create').set(json).send({ id, customerId: 'c-p' }).expect(200);
    await request(http).post('/example/app/order/v1/addtag').set(json).send({ id, tag: { key: 'k', value: 'v' } }).expect(200);
    const stream = encodeURIComponent(`example_app_order_v1#${id}`);
    const refused = await request(http).post(`/admin/streams/${stream}/truncate?before=2`).set(ADMIN).expect(409);
    expect(refused.body.message).toMatch(/example\.app\.order\.v1\.Order aggregate.*not a snapshot/);
    await request(http).get(`/example/app/order/v1/${id}/history`).set({ Accept: 'application/json' }).expect(200);

    const raw = `raw-${randomUUID()}`;
    await request(http).post(`/aggregates/${raw}/events`).set(ADMIN).send({ records: [1, 2, 3].map((version) => ({ version, data: 'AA==' })) }).expect(201);
    await request(http).post(`/admin/streams/${raw}/truncate?before=3`).set(ADMIN).expect(200, { truncated: true });
  });
});
