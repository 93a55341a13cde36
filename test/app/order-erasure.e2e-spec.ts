/*
 * Erasure in the orders service (issue 16 part 5, issue 20): DELETE /admin/orders/:id takes the order from the
 * store and its indexes, the id cannot be placed again; /admin/streams/:streamId erases or truncates any stream.
 * The real AppModule on the embedded server, with an ADMIN_TOKEN.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { CapturingLogger, startService, type ServiceUnderTest } from '../support/app.js';
import { Order } from '../../example/src/modules/orders/index.js';

const TOKEN = `t-${randomUUID()}`;
const ADMIN = { Authorization: `Bearer ${TOKEN}` };
const logger = new CapturingLogger();
let service: ServiceUnderTest;
let http: ServiceUnderTest['http'];

beforeAll(async () => {
  service = await startService({ COSMOS_DATABASE: `erasure-${randomUUID()}`, ADMIN_TOKEN: TOKEN }, logger);
  http = service.http;
});

afterAll(() => service?.close());

describe('DELETE /admin/orders/:id', () => {
  it('erases the order: GET and history answer 404, the customer list no longer has it, the id cannot be placed again', async () => {
    const customerId = `c-${randomUUID()}`;
    const { id } = (await request(http).post('/orders').send({ customerId }).expect(201)).body as { id: string };
    const kept = (await request(http).post('/orders').send({ customerId }).expect(201)).body.id as string;
    await request(http).post(`/orders/${id}/lines`).set('Idempotency-Key', 'k-1').send({ sku: 'tea', quantity: 1, unitPrice: 2 }).expect(200);
    const listed = async () => ((await request(http).get(`/customers/${customerId}/orders`).expect(200)).body.items as Array<{ id: string }>).map((o) => o.id);
    expect((await listed()).sort()).toEqual([id, kept].sort());

    await request(http).delete(`/admin/orders/${id}`).expect(401);
    await request(http).get(`/orders/${id}`).expect(200);
    await request(http).delete(`/admin/orders/${id}`).set(ADMIN).expect(200, { erased: true });

    await request(http).get(`/orders/${id}`).expect(404);
    await request(http).get(`/orders/${id}/history`).expect(404);
    expect(await listed()).toEqual([kept]);
    await request(http).post(`/orders/${id}/lines`).send({ sku: 'tea', quantity: 1, unitPrice: 2 }).expect(404);
    // Its idempotency keys went with it: the key does not answer the erased outcome.
    await request(http).post(`/orders/${id}/lines`).set('Idempotency-Key', 'k-1').send({ sku: 'tea', quantity: 1, unitPrice: 2 }).expect(404);
    // Re-creating an erased id is refused (a conflict), and erasing it again finds nothing.
    await request(http).post('/orders').send({ customerId, orderId: id }).expect(409);
    await request(http).delete(`/admin/orders/${id}`).set(ADMIN).expect(404);
    // Only the tombstone is left of the stream.
    const { records } = (await request(http).get(`/aggregates/Order%2F${id}/events`).expect(200)).body as { records: Array<{ version: number }> };
    expect(records.map((r) => r.version)).toEqual([3]);
    await request(http).get(`/orders/${kept}`).expect(200);
  });

  it('/order-stats stops counting an erased order (the subscriber handles the tombstone and keeps running)', async () => {
    const customerId = `c-${randomUUID()}`;
    const id = (await request(http).post('/orders').send({ customerId }).expect(201)).body.id as string;
    await request(http).post(`/orders/${id}/lines`).send({ sku: 'tea', quantity: 2, unitPrice: 2.5 }).expect(200);
    await request(http).post(`/orders/${id}/submit`).expect(200);
    const other = (await request(http).post('/orders').send({ customerId }).expect(201)).body.id as string;
    type Customer = { orders: number; byStatus: Record<string, number>; revenue: string; stale: boolean };
    const settled = async (check: (c: Customer) => boolean): Promise<Customer> => {
      for (let tries = 0; ; tries++) {
        const res = await request(http).get(`/order-stats/customers/${customerId}`);
        expect(res.status).not.toBe(503);
        if (res.status === 200 && !res.body.stale && check(res.body as Customer)) return res.body as Customer;
        if (tries > 200) throw new Error(`the statistics never settled: ${res.status} ${JSON.stringify(res.body)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    const before = await settled((c) => c.orders === 2);
    expect([before.byStatus.submitted, before.byStatus.open, before.revenue]).toEqual([1, 1, '5.00']);
    await request(http).delete(`/admin/orders/${id}`).set(ADMIN).expect(200);
    const after = await settled((c) => c.orders === 1);
    expect([after.byStatus.submitted, after.byStatus.open, after.revenue]).toEqual([0, 1, '0.00']);
    const stats = (await request(http).get('/order-stats').expect(200)).body as { lag: { state: string } };
    expect(stats.lag.state).not.toBe('stopped');
    await request(http).delete(`/admin/orders/${other}`).set(ADMIN).expect(200);
    await settled((c) => c.orders === 0);
  });

  it('an erase racing commands on the order wins: afterwards it is 404 and listed nowhere (the materialized view included)', async () => {
    const customerId = `c-${randomUUID()}`;
    const listed = async (path: string, id: string) =>
      ((await request(http).get(path).expect(200)).body.items as Array<{ id: string }>).some((o) => o.id === id);
    for (const [round, commands] of [1, 1, 1, 1, 1, 1, 10, 10].entries()) {
      const id = `two-${round}-${randomUUID()}`;
      await request(http).post('/orders').send({ customerId, orderId: id }).expect(201);
      await request(http).post(`/orders/${id}/lines`).send({ sku: 'tea', quantity: 1, unitPrice: 2 }).expect(200);
      const [erased] = await Promise.all([
        request(http).delete(`/admin/orders/${id}`).set(ADMIN),
        ...Array.from({ length: commands }, (_, i) => request(http).post(`/orders/${id}/lines`).send({ sku: `s-${i}`, quantity: 1, unitPrice: 1 })),
      ]);
      expect(erased.status).toBe(200);

      await request(http).get(`/orders/${id}`).expect(404);
      await request(http).get(`/orders/${id}/history`).expect(404);
      expect(await listed(`/customers/${customerId}/orders`, id)).toBe(false);
      expect(await listed(`/orders?status=open&limit=1000`, id)).toBe(false);
      const { pk, sk } = Object.assign(new Order(), { id }).keys();
      await request(http).get(`/materialized/${encodeURIComponent(pk)}/${encodeURIComponent(sk)}`).expect(404);
      await request(http).delete(`/admin/orders/${id}`).set(ADMIN).expect(404);
    }
  });

  it('an unknown order is 404; a bad id or a query parameter is 400', async () => {
    await request(http).delete(`/admin/orders/nope-${randomUUID()}`).set(ADMIN).expect(404);
    await request(http).delete('/admin/orders/%00').set(ADMIN).expect(400);
    await request(http).delete('/admin/orders/x?force=1').set(ADMIN).expect(400);
  });
});

describe('/admin/streams/:streamId', () => {
  const b64 = (text: string) => Buffer.from(text).toString('base64');
  const append = (id: string, versions: number[]) =>
    request(http)
      .post(`/aggregates/${encodeURIComponent(id)}/events`)
      .set(ADMIN)
      .send({ records: versions.map((version) => ({ version, data: b64(`e${version}`) })) })
      .expect(201);
  const versions = async (id: string) =>
    ((await request(http).get(`/aggregates/${encodeURIComponent(id)}/events`).expect(200)).body.records as Array<{ version: number }>).map((r) => r.version);

  it('truncates a stream before a version, keeping its last event', async () => {
    const id = `raw-${randomUUID()}`;
    await append(id, [1, 2, 3, 4, 5]);
    await request(http).post(`/admin/streams/${id}/truncate?before=4`).expect(401);
    await request(http).post(`/admin/streams/${id}/truncate?before=4`).set(ADMIN).expect(200, { truncated: true });
    expect(await versions(id)).toEqual([4, 5]);
    await request(http).post(`/admin/streams/${id}/truncate?before=99`).set(ADMIN).expect(200);
    expect(await versions(id)).toEqual([5]);
    for (const bad of ['', '?before=0', '?before=x', '?before=1&at=2']) {
      const res = await request(http).post(`/admin/streams/${id}/truncate${bad}`).set(ADMIN);
      expect(res.status).toBe(400);
    }
    await request(http).post(`/admin/streams/none-${randomUUID()}/truncate?before=2`).set(ADMIN).expect(404);
  });

  it('erases a stream, any namespace included (a repository-owned one too), leaving its tombstone', async () => {
    const id = `raw-${randomUUID()}`;
    await append(id, [1, 2]);
    await request(http).delete(`/admin/streams/${id}`).expect(401);
    await request(http).delete(`/admin/streams/${id}`).set(ADMIN).expect(200, { erased: true });
    expect(await versions(id)).toEqual([3]);
    await request(http).delete(`/admin/streams/${id}`).set(ADMIN).expect(404);
    // An order's stream (the poisoned-stream repair): its events go, the order is unknown afterwards.
    const order = (await request(http).post('/orders').send({ customerId: 'c' }).expect(201)).body.id as string;
    await request(http).delete(`/admin/streams/Order%2F${order}`).set(ADMIN).expect(200);
    await request(http).get(`/orders/${order}/history`).expect(404);
  });
});
