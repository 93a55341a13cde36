/*
 * Requests per repository operation (issue 17), counted at the fault proxy with a warm client: counts are
 * exact, timings are not. With the tip, `get` is one point read, `apply` on an existing aggregate one read
 * of the tip (a 304 when this process wrote it last) and one transactional batch, plus the
 * materialization of the aggregates container's document.
 */
import { randomUUID } from 'node:crypto';
import { CosmosEventStore, CosmosOpaqueStore, isOutcomeUnknown, AggregateRepository, TIP_DOCUMENT_ID } from '../../src/index.js';
import type { ProxyRecord } from '../../src/testing.js';
import { AddLine, Order, PlaceOrder } from '../../example/src/modules/orders/index.js';
import { startFaultyCosmos, until, type FaultyCosmos } from '../support/faults.js';

let env: FaultyCosmos;
let orders: AggregateRepository<Order>;
/** Another instance: its own repository (and tip cache) on the same client. */
let other: AggregateRepository<Order>;

beforeAll(async () => {
  env = await startFaultyCosmos();
  const opaque = new CosmosOpaqueStore(env.client.database(env.events.database.id).container('aggregates'));
  const events = new CosmosEventStore(env.events, { opaqueStore: opaque });
  const stores = { events, aggregates: events, opaque };
  orders = new AggregateRepository(Order, stores);
  other = new AggregateRepository(Order, stores);
  // Warm the client's container metadata before anything is counted.
  const warm = `warm-${randomUUID()}`;
  await orders.apply(new PlaceOrder(warm, 'c'));
  await orders.apply(new AddLine(warm, 'tea', 1, 1));
  await orders.get(warm);
  await env.proxy.settle();
});
afterAll(() => env?.close());

async function counted(run: () => Promise<unknown>): Promise<ProxyRecord[]> {
  await env.proxy.settle();
  env.proxy.clearRecords();
  await run();
  await env.proxy.settle();
  return [...env.proxy.records];
}

const onEvents = (r: ProxyRecord) => r.path.includes('/colls/events/');
const onAggregates = (r: ProxyRecord) => r.path.includes('/colls/aggregates/');
const kinds = (records: ProxyRecord[]) => records.map((r) => `${r.kind} ${r.status}`);

it('get of an aggregate is one point read of its tip', async () => {
  const id = `get-${randomUUID()}`;
  await orders.apply(new PlaceOrder(id, 'c'));
  await orders.apply(new AddLine(id, 'tea', 2, 3));
  // A fresh instance holds nothing in its cache: a plain read.
  const records = await counted(() => other.get(id));
  expect(kinds(records)).toEqual(['read 200']);
  expect(records[0].path).toMatch(new RegExp(`/colls/events/docs/${TIP_DOCUMENT_ID}$`));
  // Read again through the cache: the unchanged tip answers 304.
  expect(kinds(await counted(() => other.get(id)))).toEqual(['read 304']);
  expect((await other.get(id)).version).toBe(2);
});

it('apply on an existing aggregate: the tip read (304 on a cache hit) and one batch on the events container', async () => {
  const id = `apply-${randomUUID()}`;
  // Creation: the tip is missing (404), one batch, and the materialized document is created without a read
  // (nor a check for an erase after it: see erase).
  const created = await counted(() => orders.apply(new PlaceOrder(id, 'c')));
  expect(kinds(created.filter(onEvents))).toEqual(['read 404', 'batch 200']);
  expect(kinds(created.filter(onAggregates))).toEqual(['write 201']);
  // This instance wrote the tip last: its cached etag still holds.
  const hit = await counted(() => orders.apply(new AddLine(id, 'tea', 1, 1)));
  expect(kinds(hit.filter(onEvents))).toEqual(['read 304', 'batch 200']);
  // And it wrote the materialized document last: one replace under its etag, no read.
  expect(kinds(hit.filter(onAggregates))).toEqual(['write 200']);
  // Another instance wrote since: the read brings the new tip (200), then the batch.
  await other.apply(new AddLine(id, 'cake', 1, 1));
  const miss = await counted(() => orders.apply(new AddLine(id, 'jam', 1, 1)));
  expect(kinds(miss.filter(onEvents))).toEqual(['read 200', 'batch 200']);
  // Its materialized etag is stale too: the replace is refused (412), then a read and a conditional write.
  expect(kinds(miss.filter(onAggregates))).toEqual(['write 412', 'read 200', 'write 200']);
  // Nothing else is sent but the materialization of the aggregates container's document.
  expect(miss.filter((r) => !onEvents(r) && !onAggregates(r))).toEqual([]);
  expect((await orders.get(id)).version).toBe(4);
});

it('apply on an existing aggregate in a process that has not written its view: 3 requests, the view one conditional patch', async () => {
  const id = `cold-${randomUUID()}`;
  await orders.apply(new PlaceOrder(id, 'c'));
  await orders.apply(new AddLine(id, 'tea', 1, 1));
  // A new process: its own repository, nothing cached, on the same (warm) client.
  const opaque = new CosmosOpaqueStore(env.client.database(env.events.database.id).container('aggregates'));
  const events = new CosmosEventStore(env.events, { opaqueStore: opaque });
  const cold = new AggregateRepository(Order, { events, aggregates: events, opaque });
  const records = await counted(() => cold.apply(new AddLine(id, 'jam', 1, 1)));
  expect(kinds(records.filter(onEvents))).toEqual(['read 200', 'batch 200']);
  // No read of the view before its write: a patch conditional on the stored version being older.
  expect(records.filter(onAggregates).map((r) => `${r.method} ${r.status}`)).toEqual(['PATCH 200']);
  expect(records).toHaveLength(3);
  // Its etag is remembered: the next command of that process replaces under it.
  const next = await counted(() => cold.apply(new AddLine(id, 'cake', 1, 1)));
  const [write] = next.filter(onAggregates);
  expect(`${write.method} ${write.status}`).toBe('PUT 200');
  const view = await opaque.get(write.partitionKey ?? '', decodeURIComponent(write.path.split('/').at(-1) ?? ''));
  expect(view.version).toBe(4);
});

it('a burst of 20 concurrent commands on one aggregate in one instance loses no race: 20 batches, no conflict', async () => {
  const id = `burst-${randomUUID()}`;
  await orders.apply(new PlaceOrder(id, 'c'));
  let versions: number[] = [];
  const records = await counted(async () => {
    versions = await Promise.all(Array.from({ length: 20 }, (_, i) => orders.apply(new AddLine(id, `item-${i}`, 1, 1))));
  });
  expect([...versions].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
  const batches = records.filter((r) => onEvents(r) && r.kind === 'batch');
  expect(batches.map((r) => r.status)).toEqual(Array.from({ length: 20 }, () => 200));
  // No stream query at all: every command read the tip, each a 304.
  expect(records.filter((r) => onEvents(r) && (r.kind === 'query' || r.kind === 'query-plan'))).toEqual([]);
});

it('a command retried with its idempotency key after its acknowledgement was lost is stored once and answered as the first (issue 16)', async () => {
  const retries = { initialDelayMs: 5, maxDelayMs: 20 };
  const opaque = new CosmosOpaqueStore(env.client.database(env.events.database.id).container('aggregates'), { retries });
  const events = new CosmosEventStore(env.events, { opaqueStore: opaque, retries });
  const repository = new AggregateRepository(Order, { events, aggregates: events, opaque });
  const id = `idem-${randomUUID()}`;
  await repository.apply(new PlaceOrder(id, 'c'));
  // Every answer to this order's batches is lost: the first attempt lands, the resends are refused unseen.
  env.proxy.addRule({ kind: 'batch', match: (r) => r.partitionKey === `Order/${id}`, action: { type: 'reset', when: 'after' } });
  const err = await repository.apply(new AddLine(id, 'tea', 1, 1), { idempotencyKey: 'k-1' }).then(
    () => undefined,
    (e: unknown) => e,
  );
  env.proxy.clearRules();
  expect(isOutcomeUnknown(err)).toBe(true);
  // The retry with the same key finds the key in the tip: the first outcome, nothing stored twice.
  expect(await repository.apply(new AddLine(id, 'tea', 1, 1), { idempotencyKey: 'k-1' })).toBe(2);
  expect((await repository.history(id)).map((e) => e.version)).toEqual([1, 2]);
});

it('a lost acknowledgement, then another instance commits before the resend: the command is answered as landed, stored once', async () => {
  // The resend waits at least a second: time for the other instance's command to replace the tip first.
  const retries = { initialDelayMs: 2000, maxDelayMs: 2000 };
  const opaque = new CosmosOpaqueStore(env.client.database(env.events.database.id).container('aggregates'));
  const slow = new CosmosEventStore(env.events, { opaqueStore: opaque, retries });
  const first = new AggregateRepository(Order, { events: slow, aggregates: slow, opaque });
  const id = `landed-${randomUUID()}`;
  await first.apply(new PlaceOrder(id, 'c'));
  const rule = env.proxy.addRule({ kind: 'batch', times: 1, match: (r) => r.partitionKey === `Order/${id}`, action: { type: 'reset', when: 'after' } });
  const pending = first.apply(new AddLine(id, 'tea', 1, 1));
  await until(() => rule.fired === 1);
  expect(await other.apply(new AddLine(id, 'cake', 1, 1))).toBe(3);
  // The resend conflicts; the tip is another writer's now, but version 2 holds our event byte for byte.
  expect(await pending).toBe(2);
  const history = await other.history(id);
  expect(history.map((e) => [e.version, e.type])).toEqual([
    [1, 'OrderPlaced'],
    [2, 'LineAdded'],
    [3, 'LineAdded'],
  ]);
  expect((await first.get(id)).version).toBe(3);
}, 20_000);
