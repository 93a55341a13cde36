/*
 * The order statistics projection shared by two service instances over four feed ranges: both update the
 * same counters at once (ETag conflicts, retried), then one loses the leases container (it goes on applying
 * events but can no longer checkpoint or renew) and the other takes its ranges over when the leases expire,
 * delivering again everything applied since. The counters still match the orders exactly: each event applied
 * once, whoever delivered it and however often.
 */
import { getAggregateRepositoryToken, type Command, type AggregateRepository } from '../../src/index.js';
import { AddLine, CancelOrder, Order, OrdersModule, PlaceOrder, ShipOrder, SubmitOrder } from '../../example/src/modules/orders/index.js';
import { OrderStatsModule, OrderStatsStore } from '../../example/src/modules/order-stats/index.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import { DeliveryLog, eventually, startInstance, type Instance } from '../support/subscriptions.js';

let fixture: CosmosFixture;
const instances: Instance[] = [];

beforeAll(async () => {
  fixture = await startCosmosFixture({ partitionKeyRanges: 4 });
});

afterAll(async () => {
  await Promise.all(instances.map((i) => i.close()));
  await fixture?.close();
});

async function instance(name: string): Promise<Instance> {
  const started = await startInstance({
    name,
    endpoint: fixture.cosmos.endpoint,
    key: fixture.cosmos.key,
    databaseId: fixture.events.database.id,
    subscribers: [],
    log: new DeliveryLog(),
    imports: [OrdersModule, OrderStatsModule],
    // Leases of 4 s: time for A to apply events it can no longer checkpoint.
    options: { leaseDurationMs: 4_000, renewIntervalMs: 300 },
  });
  instances.push(started);
  return started;
}

const repository = (i: Instance) => i.module.get<AggregateRepository<Order>>(getAggregateRepositoryToken(Order), { strict: false });

/** Commands for order `n`: placed, lines, then submitted, shipped or cancelled, or left open. */
function lifeOf(n: number): Array<Command<Order>> {
  const id = `o-${n}`;
  const commands: Array<Command<Order>> = [new PlaceOrder(id, `cust-${n % 5}`), new AddLine(id, 'sku-a', 1 + (n % 4), 2.5)];
  if (n % 2 === 0) commands.push(new AddLine(id, 'sku-b', 3, 0.1 * n));
  if (n % 6 === 5) commands.push(new CancelOrder(id));
  else if (n % 3 !== 0) commands.push(new SubmitOrder(id), ...(n % 3 === 2 ? [new ShipOrder(id)] : []));
  return commands;
}

/** Runs the commands `first`..`last` (by position in each life) of orders `from`..`to - 1`, orders in parallel. */
async function run(repo: AggregateRepository<Order>, from: number, to: number, first = 0, last = Infinity): Promise<void> {
  await Promise.all(
    Array.from({ length: to - from }, async (_, i) => {
      for (const command of lifeOf(from + i).slice(first, last + 1)) await repo.apply(command);
    }),
  );
}

/** What the counters must say, from the materialized orders. */
async function expected(repo: AggregateRepository<Order>, count: number) {
  const byStatus: Record<string, { orders: number; cents: number }> = {};
  const customers: Record<string, { orders: number; revenueCents: number }> = {};
  for (let n = 0; n < count; n++) {
    const order = await repo.load(`o-${n}`);
    const cents = Number(order.totalCents);
    const s = (byStatus[order.status] ??= { orders: 0, cents: 0 });
    s.orders++;
    s.cents += cents;
    const c = (customers[order.customerId] ??= { orders: 0, revenueCents: 0 });
    c.orders++;
    if (order.status === 'submitted' || order.status === 'shipped') c.revenueCents += cents;
  }
  return { byStatus, customers };
}

it('keeps exact counters while two instances share the work and one of them loses its leases', async () => {
  const a = await instance('A');
  const b = await instance('B');
  await eventually(
    'the ranges are split two and two',
    () => a.subscriptions.status()[0].ownedRanges.length === 2 && b.subscriptions.status()[0].ownedRanges.length === 2,
    20_000,
  );
  await run(repository(a), 0, 16);
  await run(repository(b), 16, 24);
  await run(repository(b), 24, 40, 0, 0);
  await a.subscriptions.waitForCatchUp('order-stats', { timeoutMs: 20_000 });
  // A can no longer checkpoint: what it applies from now on (lines added, so not idempotent by nature) is
  // delivered again by B after the takeover.
  a.cut('leases');
  const handledAtCut = a.subscriptions.status()[0].handled;
  await run(repository(b), 24, 40, 1);
  // What A is guaranteed to do: its lease is still valid for up to 4 s, so it reads and applies the page of new
  // events in hand (at least one event), then fails to checkpoint it and stops when the lease runs out.
  await eventually('A applied events it cannot checkpoint', () => a.subscriptions.status()[0].handled > handledAtCut, 4_000);
  await eventually('B holds every range', () => b.subscriptions.status()[0].ownedRanges.length === 4, 20_000);
  await b.subscriptions.waitForCatchUp('order-stats', { timeoutMs: 30_000 });

  const view = await b.module.get(OrderStatsStore, { strict: false }).view();
  const want = await expected(repository(b), 40);
  for (const [status, { orders, total }] of Object.entries(view.byStatus)) {
    expect({ status, orders, cents: Math.round(Number(total) * 100) }).toEqual({ status, ...(want.byStatus[status] ?? { orders: 0, cents: 0 }) });
  }
  expect(Object.fromEntries(view.customers.map((c) => [c.customerId, { orders: c.orders, revenueCents: Math.round(Number(c.revenue) * 100) }]))).toEqual(
    want.customers,
  );
  expect(await b.subscriptions.deadLetters('order-stats')).toEqual([]);
  expect(b.logger.text).toMatch(/took .* from A \(expired\)/);
}, 120_000);
