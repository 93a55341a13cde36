/*
 * The service's subscriber meets records it cannot read (issue 10, item 1), on its embedded Cosmos server:
 * the README walkthrough's raw write and another writer's protobuf events, in streams the order statistics
 * do not read, never stop it; an undecodable record in an `Order/` stream stops it (policy stop), and then
 * /health, /order-stats and the admin routes say so and let an admin discard the event and resume.
 */
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { STORE, SUBSCRIPTIONS, type Store, type Subscriptions } from '../../src/index.js';
import { CapturingLogger, startService, type ServiceUnderTest } from '../support/app.js';

const ADMIN_TOKEN = 'poison-events-test-admin-token-0123456789';
const admin = { Authorization: `Bearer ${ADMIN_TOKEN}` };
const logger = new CapturingLogger();
let service: ServiceUnderTest;
let http: ServiceUnderTest['http'];
let subscriptions: Subscriptions;
let store: Store;

beforeAll(async () => {
  service = await startService({ COSMOS_DATABASE: `poison-${randomUUID()}`, ADMIN_TOKEN }, logger);
  http = service.http;
  subscriptions = service.app.get<Subscriptions>(SUBSCRIPTIONS);
  store = service.app.get<Store>(STORE);
});

afterAll(() => service?.close());

async function placeOrder(customerId: string): Promise<string> {
  const { body } = await request(http).post('/orders').send({ customerId }).expect(201);
  await request(http).post(`/orders/${encodeURIComponent(body.id as string)}/lines`).send({ sku: 'tea', quantity: 2, unitPrice: 3 }).expect(200);
  return body.id as string;
}

const catchUp = () => subscriptions.waitForCatchUp('order-stats', { timeoutMs: 20_000 });

describe('order-stats and records it cannot read', () => {
  it("passes over the walkthrough's raw write and a protosource service's events, and counts the orders", async () => {
    // The README walkthrough: a record that is not an event envelope ({"placed":true}).
    await request(http)
      .post('/aggregates/demo-1/events')
      .set(admin) // raw writes are an admin action once ADMIN_TOKEN is set
      .send({ records: [{ version: 1, data: 'eyJwbGFjZWQiOnRydWV9' }] })
      .expect(201);
    // A Go protosource service sharing the container: protobuf Any bytes in its own stream namespace.
    await store.save('example_app_order_v1#o-1', [
      { version: 1, data: new Uint8Array([0x0a, 0x2b, ...new TextEncoder().encode('type.googleapis.com/example.app.order.v1.Created')]) },
    ]);
    await placeOrder('c-ada');
    await placeOrder('c-bob');
    await catchUp();

    const { body } = await request(http).get('/order-stats').expect(200);
    expect(body.byStatus.open).toEqual({ orders: 2, total: '12.00' });
    expect(body.stale).toBe(false);
    expect(body.lag).toMatchObject({ state: 'running', estimatedPending: 0 });
    await request(http).get('/health').expect(200);
    const { body: letters } = await request(http).get('/admin/subscriptions/order-stats/dead-letters').set(admin).expect(200);
    expect(letters).toEqual({ items: [] });
  });

  it('stops at an undecodable record of an order stream; an admin sees it, discards it and resumes', async () => {
    // Written past the HTTP API, as a buggy or foreign writer into the orders' namespace would.
    await store.save('Order/poisoned', [{ version: 1, data: new TextEncoder().encode('{"placed":true}') }]);
    await waitUntilStopped();

    const health = await request(http).get('/health').expect(503);
    expect(JSON.stringify(health.body)).toContain('stopped on a failure: order-stats');
    const stats = await request(http).get('/order-stats').expect(503);
    expect(stats.body).toMatchObject({
      statusCode: 503,
      error: 'Service Unavailable',
      message: expect.stringContaining('stale: subscriber order-stats stopped on a failure'),
      lag: { state: 'stopped', reason: expect.stringContaining('Order/poisoned@1') },
    });
    await request(http).get('/order-stats/customers/c-ada').expect(503);

    // An order placed meanwhile waits for the group.
    await placeOrder('c-cy');
    await request(http).get('/admin/subscriptions/order-stats/dead-letters').expect(401);
    const { body } = await request(http).get('/admin/subscriptions/order-stats/dead-letters').set(admin).expect(200);
    expect(body.items).toEqual([
      expect.objectContaining({
        id: expect.stringMatching(/^[0-9a-f]{40}$/),
        handler: '(deserialize)',
        aggregateId: 'Order/poisoned',
        version: 1,
        data: Buffer.from('{"placed":true}').toString('base64'),
        policy: 'stop',
      }),
    ]);
    const id = body.items[0].id as string;

    // Replaying cannot help a record that does not decode: 409, and the record stays.
    const replay = await request(http).post(`/admin/subscriptions/order-stats/dead-letters/${id}/replay`).set(admin).expect(409);
    expect(replay.body).toMatchObject({ statusCode: 409, error: 'Conflict', message: expect.stringContaining('the dead letter is kept') });

    await request(http).delete(`/admin/subscriptions/order-stats/dead-letters/${id}`).set(admin).expect(200, { discarded: id });
    await request(http).delete(`/admin/subscriptions/order-stats/dead-letters/${id}`).set(admin).expect(404);
    const resumed = await request(http).post('/admin/subscriptions/order-stats/resume').set(admin).expect(200);
    expect(resumed.body).toMatchObject({ resumed: 'order-stats' });
    await catchUp();

    const after = await request(http).get('/order-stats').expect(200);
    expect(after.body.byStatus.open).toEqual({ orders: 3, total: '18.00' });
    expect(after.body.stale).toBe(false);
    await request(http).get('/health').expect(200);
    const again = await request(http).post('/admin/subscriptions/order-stats/resume').set(admin).expect(409);
    expect(again.body).toMatchObject({ statusCode: 409, error: 'Conflict', message: expect.stringContaining('is running, not stopped') });
  });

  it('says an operator stopped the statistics, and why, until they are resumed', async () => {
    await subscriptions.stopGroup('order-stats', { reason: 'maintenance' });
    const stats = await request(http).get('/order-stats').expect(503);
    expect(stats.body).toMatchObject({
      message: expect.stringContaining('stale: subscriber order-stats was stopped by an operator (maintenance)'),
      lag: { state: 'stopped', reason: 'maintenance', stoppedBy: 'operator' },
    });
    await request(http).post('/admin/subscriptions/order-stats/resume').set(admin).expect(200);
    await catchUp();
    await request(http).get('/order-stats').expect(200);
  });

  it('answers 404 with a JSON error for an unknown subscriber or dead letter', async () => {
    const unknown = await request(http).get('/admin/subscriptions/nobody/dead-letters').set(admin).expect(404);
    expect(unknown.body).toMatchObject({ statusCode: 404, error: 'Not Found', message: expect.stringContaining('no subscriber named "nobody"') });
    await request(http).post('/admin/subscriptions/nobody/resume').set(admin).expect(404);
    const letter = await request(http).post(`/admin/subscriptions/order-stats/dead-letters/${'0'.repeat(40)}/replay`).set(admin).expect(404);
    expect(letter.body).toMatchObject({ statusCode: 404, error: 'Not Found', message: expect.stringContaining('has no dead letter') });
    await request(http).delete('/admin/subscriptions/order-stats/dead-letters/not-an-id').set(admin).expect(404);
  });
});

async function waitUntilStopped(): Promise<void> {
  const deadline = Date.now() + 20_000;
  while ((await subscriptions.lag('order-stats'))[0].state !== 'stopped') {
    if (Date.now() > deadline) throw new Error('order-stats did not stop');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
