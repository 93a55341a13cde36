/*
 * The example's order statistics store under cut answers: its reads are retried, and a batch whose answer
 * was cut after the server applied it is worked out again from fresh reads, so the event counts once and
 * the subscriber's own attempts are not spent on it (issue 12: a projection stopped for good on these).
 */
import { randomUUID } from 'node:crypto';
import { EventStoreError } from '../../src/index.js';
import { ORDER_EVENT_TYPES, OrderStatsStore } from '../../example/src/modules/order-stats/order-stats.store.js';
import { startFaultyCosmos, type FaultyCosmos } from '../support/faults.js';

let env: FaultyCosmos;
let store: OrderStatsStore;
let direct: OrderStatsStore;

beforeAll(async () => {
  env = await startFaultyCosmos();
  store = new OrderStatsStore(env.client.database(env.events.database.id).container('aggregates'));
  direct = new OrderStatsStore(env.directEvents.database.container('aggregates'));
  await store.view();
});
afterEach(() => {
  env.proxy.clearRules();
  env.proxy.clearRecords();
});
afterAll(() => env?.close());

const event = (aggregateId: string, version: number, type: string, payload: unknown) => ({ aggregateId, version, type, payload });
const statuses = async (kind: string) => {
  await env.proxy.settle();
  return env.proxy.records.filter((r) => r.kind === kind).map((r) => r.status);
};

it('applies an event once when its batch answer is cut after the server applied it, its reads cut too', async () => {
  const order = `Order/${randomUUID()}`;
  const customerId = `c-${randomUUID()}`;
  env.proxy.addRule({ kind: 'read', times: 2, action: { type: 'truncate' } });
  env.proxy.addRule({ kind: 'batch', times: 1, action: { type: 'truncate' } });
  // Applied by the first batch; the retry's fresh reads find it so.
  await expect(store.apply(event(order, 1, ORDER_EVENT_TYPES.placed, { customerId }))).resolves.toBe('duplicate');
  expect(await statuses('batch')).toEqual(['truncated']);
  expect((await statuses('read')).filter((s) => s === 'truncated')).toHaveLength(2);

  env.proxy.clearRecords();
  env.proxy.addRule({ kind: 'batch', times: 1, action: { type: 'truncate' } });
  await store.apply(event(order, 2, ORDER_EVENT_TYPES.lineAdded, { sku: 'tea', quantity: 2, unitPrice: 3.5 }));
  expect(await statuses('batch')).toEqual(['truncated']);

  env.proxy.clearRecords();
  env.proxy.addRule({ kind: 'query', times: 1, action: { type: 'truncate' } });
  const view = await store.view();
  // Two queries (the status counters and a page of customers): the one cut is sent again.
  const queries = await statuses('query');
  expect(queries.filter((s) => s === 'truncated')).toHaveLength(1);
  expect(queries.filter((s) => s === 200)).toHaveLength(2);
  expect(view.customers.find((c) => c.customerId === customerId)).toMatchObject({ orders: 1, byStatus: { open: 1 } });
  expect((await direct.view()).byStatus.open).toEqual(view.byStatus.open);
});

it('gives up with an EventStoreError once its attempts are spent, counting nothing twice', async () => {
  const order = `Order/${randomUUID()}`;
  const customerId = `c-${randomUUID()}`;
  env.proxy.addRule({ kind: 'batch', action: { type: 'status', status: 503 } });
  const err = await store.apply(event(order, 1, ORDER_EVENT_TYPES.placed, { customerId })).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(EventStoreError);
  expect(await statuses('batch')).toHaveLength(5);
  env.proxy.clearRules();
  await expect(store.apply(event(order, 1, ORDER_EVENT_TYPES.placed, { customerId }))).resolves.toBe('applied');
  expect((await direct.view()).customers.find((c) => c.customerId === customerId)).toMatchObject({ orders: 1 });
});
