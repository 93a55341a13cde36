/*
 * The order statistics read model end to end: the real AppModule on its embedded Cosmos server, orders
 * driven over HTTP by concurrent clients, the statistics read over HTTP once the subscription has caught up
 * and compared with what the orders' event histories say; then rebuilt by the admin action while orders keep
 * coming, and consistent again.
 */
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { CapturingLogger, startService, type ServiceUnderTest } from '../support/app.js';

interface Lag {
  state: string;
  estimatedPending: number;
  behindMs: number;
}
type Status = 'open' | 'submitted' | 'shipped' | 'cancelled';
interface StatsBody {
  byStatus: Record<Status, { orders: number; total: string }>;
  customers: Array<{ customerId: string; orders: number; byStatus: Record<Status, number>; revenue: string }>;
  lag: Lag;
}
interface HistoryBody {
  events: Array<{ type: string; version: number } & Record<string, unknown>>;
}

const logger = new CapturingLogger();
let service: ServiceUnderTest;
let http: ServiceUnderTest['http'];
const orders: string[] = [];

beforeAll(async () => {
  service = await startService({ COSMOS_DATABASE: `order-stats-${randomUUID()}` }, logger);
  http = service.http;
});

afterAll(() => service?.close());

const customers = ['c-ada', 'c-bob', 'c-cy', 'c-dee'];

/** One order's life, chosen by `n`: lines added (one SKU twice), maybe one removed, then an end state. */
async function orderLife(n: number): Promise<void> {
  const customerId = customers[n % customers.length];
  const { body } = await request(http).post('/orders').send({ customerId }).expect(201);
  const id = body.id as string;
  orders.push(id);
  const at = (rest: string) => `/orders/${encodeURIComponent(id)}${rest}`;
  const lines = [
    { sku: 'tea', quantity: 1 + (n % 3), unitPrice: 3.1 },
    { sku: 'cup', quantity: 2, unitPrice: 7.25 + n },
    { sku: 'tea', quantity: 1, unitPrice: 3.3 },
  ].slice(0, 1 + (n % 3));
  for (const line of lines) await request(http).post(at('/lines')).send(line).expect(200);
  if (n % 4 === 1) await request(http).delete(at('/lines/tea')).expect(200);
  const end = n % 5;
  if (end === 0) return; // stays open
  const hasLines = n % 4 !== 1 || lines.some((l) => l.sku !== 'tea');
  if (end === 4 || !hasLines) {
    await request(http).post(at('/cancel')).expect(200);
    return;
  }
  await request(http).post(at('/submit')).expect(200);
  if (end >= 2) await request(http).post(at('/ship')).expect(200);
}

/** Integer cents as the API writes money: an exact decimal string with two decimals. */
const amount = (cents: bigint) => `${cents / 100n}.${(cents % 100n).toString().padStart(2, '0')}`;
/** A price the tests send (at most two decimals) in exact integer cents. */
const priceCents = (price: number) => BigInt(Math.round(price * 100));

/** The statistics the events say, folded here from each order's history, independently of the projection. */
async function expectedStats(): Promise<Omit<StatsBody, 'lag'>> {
  const byStatus = { open: { orders: 0, cents: 0n }, submitted: { orders: 0, cents: 0n }, shipped: { orders: 0, cents: 0n }, cancelled: { orders: 0, cents: 0n } };
  const perCustomer = new Map<string, { orders: number; byStatus: Record<Status, number>; revenueCents: bigint }>();
  for (const id of orders) {
    const { events } = (await request(http).get(`/orders/${encodeURIComponent(id)}/history`).expect(200)).body as HistoryBody;
    let customerId = '';
    let status: Status = 'open';
    const lines = new Map<string, { quantity: number; unitPrice: number }>();
    for (const event of events) {
      if (event.type === 'OrderPlaced') customerId = event.customerId as string;
      else if (event.type === 'LineAdded') {
        const sku = event.sku as string;
        lines.set(sku, { quantity: (lines.get(sku)?.quantity ?? 0) + (event.quantity as number), unitPrice: event.unitPrice as number });
      } else if (event.type === 'LineRemoved') lines.delete(event.sku as string);
      else if (event.type === 'OrderSubmitted') status = 'submitted';
      else if (event.type === 'OrderShipped') status = 'shipped';
      else if (event.type === 'OrderCancelled') status = 'cancelled';
    }
    const cents = [...lines.values()].reduce((sum, l) => sum + BigInt(l.quantity) * priceCents(l.unitPrice), 0n);
    byStatus[status].orders++;
    byStatus[status].cents += cents;
    const customer = perCustomer.get(customerId) ?? { orders: 0, byStatus: { open: 0, submitted: 0, shipped: 0, cancelled: 0 }, revenueCents: 0n };
    customer.orders++;
    customer.byStatus[status]++;
    if (status === 'submitted' || status === 'shipped') customer.revenueCents += cents;
    perCustomer.set(customerId, customer);
  }
  return {
    byStatus: Object.fromEntries(Object.entries(byStatus).map(([s, v]) => [s, { orders: v.orders, total: amount(v.cents) }])) as StatsBody['byStatus'],
    customers: [...perCustomer]
      .sort(([x], [y]) => (x < y ? -1 : 1))
      .map(([customerId, c]) => ({ customerId, orders: c.orders, byStatus: c.byStatus, revenue: amount(c.revenueCents) })),
  };
}

/** Polls `GET /order-stats` until the subscription has nothing pending, as an HTTP client would. */
async function caughtUp(): Promise<StatsBody> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { stale, ...stats } = (await request(http).get('/order-stats').expect(200)).body as StatsBody & { stale: boolean };
    // `stale` says what the lag says: some events are not counted yet.
    expect(stale).toBe(stats.lag.state !== 'running' || stats.lag.estimatedPending > 0);
    if (!stale) return stats;
    if (Date.now() > deadline) throw new Error(`order-stats did not catch up: ${JSON.stringify(stats.lag)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('order statistics', () => {
  it('after catch-up, count and total orders per status and per customer as their events say', async () => {
    await Promise.all(Array.from({ length: 20 }, (_, n) => orderLife(n)));
    const { lag, ...stats } = await caughtUp();
    expect(lag.behindMs).toBe(0);
    const expected = await expectedStats();
    expect(stats).toEqual(expected);
    // Every order is somewhere, and the example covers every status.
    expect(Object.values(stats.byStatus).reduce((sum, s) => sum + s.orders, 0)).toBe(20);
    for (const status of ['open', 'submitted', 'shipped', 'cancelled'] as const) expect(stats.byStatus[status].orders).toBeGreaterThan(0);

    const one = (await request(http).get('/order-stats/customers/c-bob').expect(200)).body;
    expect(one).toEqual({ ...expected.customers.find((c) => c.customerId === 'c-bob'), stale: false, lag: expect.objectContaining({ estimatedPending: 0 }) });
    await request(http).get('/order-stats/customers/nobody').expect(404);
  });

  it('is rebuilt from the events by the admin action, while orders keep coming, to the same consistent state', async () => {
    const before = await caughtUp();
    const rebuild = await request(http).post('/admin/projections/order-stats/rebuild').expect(202);
    expect(rebuild.body).toMatchObject({ rebuilding: 'order-stats', lag: { state: 'running' } });
    await Promise.all(Array.from({ length: 6 }, (_, n) => orderLife(20 + n)));
    const { lag, ...after } = await caughtUp();
    expect(lag.estimatedPending).toBe(0);
    expect(after).toEqual(await expectedStats());
    expect(Object.values(after.byStatus).reduce((sum, s) => sum + s.orders, 0)).toBe(26);
    expect(Object.values(before.byStatus).reduce((sum, s) => sum + s.orders, 0)).toBe(20);
    expect(logger.text).toMatch(/order-stats: rebuilding from beginning/);
  });

  it('keeps money exact at the orders\' limits: a total of 10^17 cents beside one of 10 cents, through a rebuild', async () => {
    const place = async (customerId: string, line: { sku: string; quantity: number; unitPrice: number }) => {
      const id = ((await request(http).post('/orders').send({ customerId }).expect(201)).body as { id: string }).id;
      orders.push(id);
      await request(http).post(`/orders/${id}/lines`).send(line).expect(200);
      return id;
    };
    const big = await place('c-limits', { sku: 'gold', quantity: 1_000_000, unitPrice: 1_000_000_000 });
    const small = await place('c-limits', { sku: 'tea', quantity: 1, unitPrice: 0.1 });
    await request(http).post(`/orders/${big}/submit`).expect(200);
    await request(http).post(`/orders/${big}/cancel`).expect(200);
    await request(http).post(`/orders/${small}/submit`).expect(200);
    const { lag, ...stats } = await caughtUp();
    expect(lag.estimatedPending).toBe(0);
    const expected = await expectedStats();
    expect(stats).toEqual(expected);
    expect(expected.customers.find((c) => c.customerId === 'c-limits')?.revenue).toBe('0.10');
    expect(BigInt(stats.byStatus.cancelled.total.replace('.', ''))).toBeGreaterThanOrEqual(100_000_000_000_000_000n);
    const one = (await request(http).get('/order-stats/customers/c-limits').expect(200)).body as { revenue: string };
    expect(one.revenue).toBe('0.10');

    await request(http).post('/admin/projections/order-stats/rebuild').expect(202);
    const { lag: _, ...rebuilt } = await caughtUp();
    expect(rebuilt).toEqual(expected);
  });

  it('pages the customers with a continuation token bound to the statistics', async () => {
    const { customers: all } = await caughtUp();
    const seen: string[] = [];
    let token: string | undefined;
    do {
      const query: Record<string, string> = { limit: '2', ...(token !== undefined && { continuationToken: token }) };
      const page = (await request(http).get('/order-stats').query(query).expect(200)).body as StatsBody & { continuationToken?: string };
      expect(page.customers.length).toBeLessThanOrEqual(2);
      seen.push(...page.customers.map((c) => c.customerId));
      token = page.continuationToken;
    } while (token !== undefined);
    expect(seen).toEqual(all.map((c) => c.customerId));
    expect(seen.length).toBeGreaterThan(2);
    const refused = await request(http).get('/order-stats').query({ continuationToken: 'bm90LW91cnMtYXQtYWxs' }).expect(400);
    expect(refused.body).toMatchObject({ field: 'continuationToken' });
    await request(http).get('/order-stats').query({ limit: '0' }).expect(400);
    await request(http).get('/order-stats').query({ nope: '1' }).expect(400);
    await request(http).get('/order-stats/customers/%01').expect(400);
  });
});
