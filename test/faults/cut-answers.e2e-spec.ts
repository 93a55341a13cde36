/*
 * Answers cut mid-body: the proxy sends the status line, the headers (with the full content-length) and
 * part of the body, then closes the connection, after the server has run the request. @azure/cosmos
 * surfaces it as `Error reading response as text: aborted` (code PARSE_ERROR), and does not retry it
 * itself. Reads must be retried, writes settled as lost acknowledgements: each test checks what the
 * server really holds (read past the proxy) and that the cut happened.
 */
import { randomUUID } from 'node:crypto';
import { ChangeFeedStartFrom, type Container } from '@azure/cosmos';
import {
  CosmosEventStore,
  CosmosOpaqueStore,
  EventStoreError,
  isTransientReadFailure,
  NotFoundError,
  type EventRecord,
  type OpaqueData,
} from '../../src/index.js';
import { type CosmosRequestKind, type FaultAction } from '../../src/testing.js';
import { bytes, proxiedClient, startFaultyCosmos, type FaultyCosmos } from '../support/faults.js';

let env: FaultyCosmos;
let store: CosmosEventStore;
let opaque: CosmosOpaqueStore;
let direct: CosmosOpaqueStore;
let aggregates: Container;
const retries = { initialDelayMs: 5, maxDelayMs: 20 };
const cut: FaultAction = { type: 'truncate' };

beforeAll(async () => {
  env = await startFaultyCosmos();
  store = new CosmosEventStore(env.events, { retries });
  aggregates = env.client.database(env.events.database.id).container('aggregates');
  opaque = new CosmosOpaqueStore(aggregates, { retries });
  direct = new CosmosOpaqueStore(env.directEvents.database.container('aggregates'));
  // The client's first calls on a container fetch its metadata: make them before a test counts requests.
  const warm = `warm-${randomUUID()}`;
  await opaque.put(doc(warm, 's', 1));
  await opaque.query({ pk: warm });
  await opaque.query({ index: 1, pk: warm });
  await store.load(warm);
  await env.proxy.settle();
  env.proxy.clearRecords();
});
afterEach(() => {
  env.proxy.clearRules();
  env.proxy.clearRecords();
});
afterAll(() => env?.close());

const records = (from: number, to: number): EventRecord[] =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ version: from + i, data: bytes(`event-${from + i}`) }));

function doc(pk: string, sk: string, version?: number, text = `v${version ?? 0}`): OpaqueData {
  return { pk, sk, version, body: bytes(text), gsi: { 1: { pk: `g-${pk}`, sk } } };
}

/** Status the client got and the server's own answer, per request of the kinds. */
async function requests(...kinds: CosmosRequestKind[]): Promise<Array<[number | string, number | undefined]>> {
  await env.proxy.settle();
  return env.proxy.records.filter((r) => kinds.includes(r.kind)).map((r) => [r.status, r.upstreamStatus]);
}

async function storedVersions(id: string): Promise<number[]> {
  const { resources } = await env.directEvents.items
    .query<{ v: number }>({ query: 'SELECT c.v FROM c WHERE c.a = @a', parameters: [{ name: '@a', value: id }] })
    .fetchAll();
  return resources.map((r) => r.v).sort((x, y) => x - y);
}

describe('the truncate action', () => {
  it('runs the request, then sends the headers and part of the body and closes the connection', async () => {
    const a = `cut-${randomUUID()}`;
    env.proxy.addRule({ kind: 'write', times: 1, action: { type: 'truncate', fraction: 0.3 } });
    const err = await env.events.items.create({ id: 'x', a, pad: 'p'.repeat(500) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PARSE_ERROR', message: 'Error reading response as text: aborted' });
    expect(await requests('write')).toEqual([['truncated', 201]]);
    expect(env.proxy.records[0].fault).toBe('truncate');
    // The server ran it: the client lost only the answer.
    expect((await env.directEvents.item('x', a).read()).statusCode).toBe(200);
  });

  it('is transient however the SDK rethrows it, the change feed iterator keeping only the message of a cut listing', async () => {
    const errors: unknown[] = [];
    for (const kind of ['read', 'query'] as const) env.proxy.addRule({ kind, times: 1, action: cut });
    errors.push(await env.events.item('1', 'nothing').read().catch((e: unknown) => e));
    errors.push(await env.events.items.query('SELECT * FROM c', { partitionKey: 'nothing' }).fetchAll().catch((e: unknown) => e));
    // A change feed read whose partition key range listing (the routing map) is cut, on a fresh client.
    const fresh = proxiedClient(env.cosmos, env.proxy);
    env.proxy.addRule({ path: /\/pkranges$/, times: 1, action: cut });
    errors.push(
      await fresh
        .database(env.events.database.id)
        .container('events')
        .items.getChangeFeedIterator({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning() })
        .readNext()
        .catch((e: unknown) => e),
    );
    fresh.dispose();
    // That one is rebuilt from the message alone.
    expect((errors[2] as { code?: unknown }).code).toBeUndefined();
    expect(errors.map((e) => (e as Error).message)).toEqual(Array(3).fill('Error reading response as text: aborted'));
    expect(errors.map(isTransientReadFailure)).toEqual([true, true, true]);
    expect(env.proxy.count({ status: 'truncated' })).toBe(3);
  });

  it('refuses a fraction outside 0..1', () => {
    expect(() => env.proxy.addRule({ action: { type: 'truncate', fraction: 1 } })).toThrow(/fraction/);
    expect(() => env.proxy.addRule({ action: { type: 'truncate', fraction: -0.1 } })).toThrow(/fraction/);
  });
});

describe('the event store', () => {
  const id = `stream-${randomUUID()}`;
  const history = records(1, 12);
  beforeAll(() => new CosmosEventStore(env.directEvents).save(id, history));

  it('retries load, loadTail and readStream after a cut answer and returns the records exactly', async () => {
    env.proxy.addRule({ kind: 'query', times: 2, action: cut });
    expect((await store.load(id)).records).toEqual(history);
    expect(await requests('query')).toEqual([['truncated', 200], ['truncated', 200], [200, 200]]);

    env.proxy.clearRecords();
    env.proxy.addRule({ kind: 'query', times: 1, action: cut });
    expect((await store.loadTail(id, 3)).records).toEqual(history.slice(-3));
    expect(await requests('query')).toEqual([['truncated', 200], [200, 200]]);

    env.proxy.clearRecords();
    // The second page is cut: the stream goes on past the last record handed out, each record once.
    let pages = 0;
    env.proxy.addRule({ kind: 'query', match: () => ++pages === 2, action: cut });
    const streamed: EventRecord[] = [];
    for await (const record of store.readStream(id, { pageSize: 5 })) streamed.push(record);
    expect(streamed).toEqual(history);
    expect((await requests('query')).map(([status]) => status)).toContain('truncated');
  });

  it('gives up after its attempts with an EventStoreError whose cause is the cut answer', async () => {
    env.proxy.addRule({ kind: 'query', action: cut });
    const err = await store.load(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EventStoreError);
    expect((err as Error).message).toMatch(/Error reading response as text/);
    expect(await requests('query')).toHaveLength(5);
  });

  it('settles a save whose batch answer was cut as the lost acknowledgement it is: stored once, resolved', async () => {
    const saved = `save-${randomUUID()}`;
    await store.save(saved, records(1, 2));
    await env.proxy.settle();
    env.proxy.clearRecords();
    env.proxy.addRule({ kind: 'batch', times: 1, action: cut });
    await store.save(saved, records(3, 5));
    // The retry's conflicts are read back and found to be ours, byte for byte.
    expect(await requests('batch')).toEqual([['truncated', 200], [207, 207]]);
    expect(await storedVersions(saved)).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('the aggregates store', () => {
  const text = (found: OpaqueData) => new TextDecoder().decode(found.body);

  it('retries get and query after a cut answer', async () => {
    const pk = `get-${randomUUID()}`;
    await direct.put(doc(pk, 'a', 1, 'one'));
    await direct.put(doc(pk, 'b', 1, 'two'));
    env.proxy.addRule({ kind: 'read', times: 1, action: cut });
    expect(text(await opaque.get(pk, 'a'))).toBe('one');
    expect(await requests('read')).toEqual([['truncated', 200], [200, 200]]);

    for (const query of [{ pk }, { index: 1, pk: `g-${pk}` }]) {
      env.proxy.clearRecords();
      env.proxy.addRule({ kind: 'query', times: 1, action: cut });
      expect((await opaque.query(query)).items.map(text)).toEqual(['one', 'two']);
      expect(await requests('query')).toEqual([['truncated', 200], [200, 200]]);
    }
  });

  it('retries put, putIfNewer and delete after a cut answer; each lands once', async () => {
    const pk = `write-${randomUUID()}`;
    env.proxy.addRule({ kind: 'write', times: 1, action: cut });
    await opaque.put(doc(pk, 'p', 1, 'put'));
    expect(await requests('write')).toEqual([['truncated', 201], [200, 200]]);
    expect(text(await direct.get(pk, 'p'))).toBe('put');

    env.proxy.clearRecords();
    env.proxy.addRule({ kind: 'write', times: 1, action: cut });
    // The create was applied; the re-read finds it stored exactly as sent: ours.
    await expect(opaque.putIfNewer(doc(pk, 'n', 4, 'newer'))).resolves.toBe(true);
    expect(await requests('write')).toEqual([['truncated', 201]]);
    expect(text(await direct.get(pk, 'n'))).toBe('newer');

    env.proxy.clearRecords();
    // A delete's answer has no body to cut: the proxy resets it after the server ran it.
    env.proxy.addRule({ kind: 'delete', times: 1, action: cut });
    await opaque.delete(pk, 'p');
    expect(await requests('delete')).toEqual([['reset', 204], [404, 404]]);
    await expect(direct.get(pk, 'p')).rejects.toBeInstanceOf(NotFoundError);
  });
});
