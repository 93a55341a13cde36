/*
 * Every read route of the service under faults, the service on a Cosmos DB account behind the fault
 * proxy: one cut answer per request kind is retried and the route answers 200; Cosmos DB unavailable for
 * good (every answer cut) gives 503 with the documented body, never 500.
 */
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { startEmbeddedCosmos, startFaultProxy, type EmbeddedCosmos, type FaultProxy, type CosmosRequestKind } from '../../src/testing.js';
import { CapturingLogger, startService, type ServiceUnderTest } from '../support/app.js';

const logger = new CapturingLogger();
let cosmos: EmbeddedCosmos;
let proxy: FaultProxy;
let service: ServiceUnderTest;
let http: ServiceUnderTest['http'];
let orderId: string;
const protosourceId = `p-${randomUUID()}`;
let mainKey: string;
const customerId = `c-${randomUUID()}`;
const ITEM_KINDS: CosmosRequestKind[] = ['read', 'query', 'query-plan', 'feed', 'batch', 'write', 'delete', 'metadata'];

beforeAll(async () => {
  cosmos = await startEmbeddedCosmos();
  proxy = await startFaultProxy({ target: cosmos.endpoint, seed: 12 });
  service = await startService(
    {
      COSMOS_ENDPOINT: proxy.endpoint,
      COSMOS_KEY: cosmos.key,
      COSMOS_DATABASE: `read-routes-${randomUUID()}`,
      SUBSCRIPTIONS_INSTANCE_ID: 'read-routes',
    },
    logger,
  );
  http = service.http;
  orderId = (await request(http).post('/orders').send({ customerId }).expect(201)).body.id as string;
  await request(http).post(`/orders/${orderId}/lines`).send({ sku: 'tea', quantity: 2, unitPrice: 3 }).expect(200);
  // Until the statistics have the order: the customer route answers 404 before.
  for (let tries = 0; (await request(http).get(`/order-stats/customers/${customerId}`)).status !== 200; tries++) {
    if (tries > 200) throw new Error('the statistics never caught up');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await request(http)
    .post('/example/app/order/v1/create')
    .set({ 'Content-Type': 'application/json', Accept: 'application/json' })
    .send({ id: protosourceId, customerId })
    .expect(200);
  const [materialized] = (await request(http).get(`/materialized?index=1&pk=${customerId}`).expect(200)).body.items as Array<{ pk: string; sk: string }>;
  mainKey = `${encodeURIComponent(materialized.pk)}/${encodeURIComponent(materialized.sk)}`;
}, 30_000);
afterEach(() => proxy.clearRules());
afterAll(async () => {
  await service?.close();
  await proxy?.close();
  await cosmos?.close();
});

const routes = () => [
  `/orders/${orderId}`,
  `/orders/${orderId}/history`,
  `/customers/${customerId}/orders`,
  '/orders?status=open',
  '/order-stats',
  `/order-stats/customers/${customerId}`,
  `/aggregates/Order%2F${orderId}/events`,
  `/aggregates/Order%2F${orderId}/events?tail=1`,
  `/materialized?index=1&pk=${customerId}`,
  `/materialized/${mainKey}`,
  '/health',
  `/example/app/order/v1/${protosourceId}`,
  `/example/app/order/v1/load/${protosourceId}`,
  `/example/app/order/v1/${protosourceId}/history`,
  `/example/app/order/v1/query/by-customer-id?customer_id=${customerId}`,
];
/** protosource's routes answer in its own error shape, `apierror/v1` (as protojson when asked). */
const protosourceRoute = (route: string) => route.startsWith('/example/');

it('answers every read route with 200 through one cut answer of each request kind', async () => {
  for (const route of routes()) {
    proxy.clearRules();
    const rules = ITEM_KINDS.map((kind) => proxy.addRule({ kind, times: 1, action: { type: 'truncate' } }));
    const res = await request(http).get(route).set('Accept', 'application/json');
    expect([route, res.status, res.status === 200 ? '' : JSON.stringify(res.body)]).toEqual([route, 200, '']);
    // Not vacuous: the route's own requests met a cut (the health route reads metadata only).
    if (route !== '/health') expect([route, rules.some((r) => r.fired > 0)]).toEqual([route, true]);
  }
}, 30_000);

it('answers 503 with the documented body, never 500, while every answer is cut', async () => {
  proxy.addRule({ action: { type: 'truncate' } });
  const answers = await Promise.all(routes().map(async (route) => [route, await request(http).get(route).set('Accept', 'application/json')] as const));
  for (const [route, res] of answers) {
    expect([route, res.status]).toEqual([route, 503]);
    if (route === '/health') {
      expect(res.body).toMatchObject({ status: 'error', error: { cosmos: { status: 'down' } } });
    } else if (protosourceRoute(route)) {
      expect(res.body).toMatchObject({ code: expect.any(String), message: expect.any(String) });
    } else {
      expect(res.body).toEqual({ statusCode: 503, error: 'Service Unavailable', message: 'Cosmos DB is unavailable; retry later' });
    }
  }
}, 60_000);
