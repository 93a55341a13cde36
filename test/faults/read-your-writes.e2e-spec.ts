/*
 * Read-your-writes of AggregateRepository.get (issue 12): materialization is best effort, so the materialized
 * document can be behind the events (a failed materialization, or an instance that died between storing
 * the events and materializing them). After a command acknowledged with version N, get never answers
 * less than N: it sees the stream's last version, rebuilds from the events and repairs the document.
 */
import { randomUUID } from 'node:crypto';
import { CosmosEventStore, CosmosOpaqueStore, AggregateRepository, type RepositoryStores } from '../../src/index.js';
import { AddLine, Order, PlaceOrder, SubmitOrder } from '../../example/src/modules/orders/index.js';
import { gate, startFaultyCosmos, until, type FaultyCosmos } from '../support/faults.js';

let env: FaultyCosmos;
let stores: RepositoryStores;
let orders: AggregateRepository<Order>;
// Straight at the server: what is really stored.
let direct: CosmosOpaqueStore;
const warnings: string[] = [];
const retries = { initialDelayMs: 5, maxDelayMs: 20 };

beforeAll(async () => {
  env = await startFaultyCosmos();
  const opaque = new CosmosOpaqueStore(env.client.database(env.events.database.id).container('aggregates'), { retries });
  const events = new CosmosEventStore(env.events, { opaqueStore: opaque, retries });
  stores = { events, aggregates: events, opaque };
  // The stream path (no tip), which streams written before the tip and stores without one take.
  orders = new AggregateRepository(Order, stores, { tip: false, logger: { warn: (message: string) => void warnings.push(message) } });
  direct = new CosmosOpaqueStore(env.directEvents.database.container('aggregates'));
  // Warm the client's container metadata before anything is counted.
  const warm = `warm-${randomUUID()}`;
  await orders.apply(new PlaceOrder(warm, 'c'));
  await orders.get(warm);
  await env.proxy.settle();
});
afterEach(() => {
  env.proxy.clearRules();
  env.proxy.clearRecords();
});
afterAll(() => env?.close());

const aggregatesWrites = { kind: ['write', 'read'] as const, path: /\/colls\/aggregates\// };

/** The materialized order's version as the server holds it. */
async function storedVersion(id: string): Promise<number | undefined> {
  const { pk, sk } = Object.assign(new Order(), { id }).keys();
  return direct.get(pk!, sk!).then(
    (doc) => doc.version,
    () => undefined,
  );
}

it('answers the acknowledged version, not the stale document, when materializing failed, and repairs it', async () => {
  const id = `stale-${randomUUID()}`;
  expect(await orders.apply(new PlaceOrder(id, 'c-1'))).toBe(1);
  // Every write to the aggregates container fails now: the command succeeds, the document stays at 1.
  env.proxy.addRule({ kind: 'write', path: aggregatesWrites.path, action: { type: 'status', status: 400 } });
  warnings.length = 0;
  expect(await orders.apply(new AddLine(id, 'tea', 2, 3))).toBe(2);
  expect(await orders.apply(new SubmitOrder(id))).toBe(3);
  expect(warnings.some((w) => w.includes(id))).toBe(true);
  expect(await storedVersion(id)).toBe(1);

  // Still failing: get answers from the events all the same.
  const read = await orders.get(id);
  expect([read.version, read.status, read.total]).toEqual([3, 'submitted', '6.00']);
  expect(read).toBeInstanceOf(Order);

  // The aggregates container back: the next get repairs the document.
  env.proxy.clearRules();
  expect((await orders.get(id)).version).toBe(3);
  expect(await storedVersion(id)).toBe(3);
});

it('answers a command that landed although its instance died before materializing it', async () => {
  const id = `landed-${randomUUID()}`;
  await orders.apply(new PlaceOrder(id, 'c-2'));
  // Another instance stored version 2 and died: its events are there, its materialization never ran.
  const dying = new AggregateRepository(Order, { ...stores, aggregates: { saveAggregate: () => new Promise<never>(() => undefined) } }, { tip: false });
  void dying.apply(new AddLine(id, 'cup', 1, 7));
  while ((await stores.events.loadTail(`Order/${id}`, 1)).records[0]?.version !== 2) await new Promise((r) => setTimeout(r, 5));
  expect(await storedVersion(id)).toBe(1);

  const read = await orders.get(id);
  expect([read.version, read.lines]).toEqual([2, [{ sku: 'cup', quantity: 1, unitPriceCents: 700 }]]);
  expect(await storedVersion(id)).toBe(2);
});

it('never writes older over newer when another writer materializes a later version during the rebuild', async () => {
  const id = `newer-${randomUUID()}`;
  await orders.apply(new PlaceOrder(id, 'c-3'));
  const other = new AggregateRepository(Order, stores, { tip: false, logger: { warn: () => undefined } });
  env.proxy.addRule({ kind: 'write', path: aggregatesWrites.path, times: 1, action: { type: 'status', status: 400 } });
  await other.apply(new AddLine(id, 'tea', 1, 1)); // version 2, not materialized
  expect(await storedVersion(id)).toBe(1);
  // The reader's repair (its write of the document: a replace under the etag of its own version-1 write,
  // or a read and a write) is held at the proxy ...
  const held = gate();
  const { pk } = Object.assign(new Order(), { id }).keys();
  let writes = 0;
  env.proxy.addRule({ kind: 'write', match: (r) => r.partitionKey === pk && ++writes === 1, action: { type: 'latency', until: held.promise } });
  const reading = orders.get(id);
  await until(() => writes >= 1);
  // ... while another writer stores and materializes version 3.
  await other.apply(new AddLine(id, 'cup', 1, 2));
  expect(await storedVersion(id)).toBe(3);
  held.open();
  expect((await reading).version).toBe(2); // the stream when the reader looked: never less than acknowledged
  expect(await storedVersion(id)).toBe(3); // its repair lost to the newer document
  expect((await orders.get(id)).version).toBe(3);
});

it('costs one single-partition query of one record beside the point read, and no rebuild when fresh', async () => {
  const id = `cost-${randomUUID()}`;
  await orders.apply(new PlaceOrder(id, 'c-4'));
  await orders.apply(new AddLine(id, 'tea', 1, 1));
  await env.proxy.settle();
  env.proxy.clearRecords();
  expect((await orders.get(id)).version).toBe(2);
  await env.proxy.settle();
  const kinds = env.proxy.records.map((r) => `${r.kind} ${r.path.includes('/aggregates/') ? 'aggregates' : 'events'}`).sort();
  // The store's single-partition queries send no query-plan request (see docs/wire-format.md).
  expect(kinds).toEqual(['query events', 'read aggregates']);
});

it('with the tip: get answers the acknowledged version from one point read of the tip, materialization failing or not', async () => {
  const tipped = new AggregateRepository(Order, stores, { logger: { warn: () => undefined } });
  const id = `tip-${randomUUID()}`;
  expect(await tipped.apply(new PlaceOrder(id, 'c-5'))).toBe(1);
  env.proxy.addRule({ kind: 'write', path: aggregatesWrites.path, action: { type: 'status', status: 400 } });
  expect(await tipped.apply(new AddLine(id, 'tea', 2, 3))).toBe(2);
  expect(await storedVersion(id)).toBe(1);
  await env.proxy.settle();
  env.proxy.clearRecords();
  // Another instance (its own cache): one plain read of the tip, in the events container.
  const read = await new AggregateRepository(Order, stores).get(id);
  expect([read.version, read.total]).toEqual([2, '6.00']);
  await env.proxy.settle();
  expect(env.proxy.records.map((r) => `${r.kind} ${r.path.includes('/aggregates/') ? 'aggregates' : 'events'}`)).toEqual(['read events']);
});
