/*
 * The aggregates store (CosmosOpaqueStore) under the proxy's faults: every call retries what the SDK leaves
 * to it (408s, 503s past the SDK's single read retry, lost connections on writes), each in a way that is
 * safe to repeat. Every test checks the requests that went out and what is really stored (read past the
 * proxy), so none passes without the fault having happened as described.
 */
import { Test } from '@nestjs/testing';
import type { Container, PluginConfig } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import {
  CosmosModule,
  CosmosOpaqueStore,
  EventStoreError,
  EventStoreModule,
  NotFoundError,
  OPAQUE_STORE,
  type OpaqueData,
  type OpaqueStore,
} from '../../src/index.js';
import { type CosmosRequestKind, type FaultAction } from '../../src/testing.js';
import { bytes, gate, startFaultyCosmos, until, type FaultyCosmos } from '../support/faults.js';

let env: FaultyCosmos;
let aggregates: Container;
// The same container straight at the server: another writer, or a look at what is really stored.
let direct: CosmosOpaqueStore;
let opaque: CosmosOpaqueStore;
// Short waits between the store's own retries: the tests are about what is retried, not how long it waits.
const retries = { initialDelayMs: 5, maxDelayMs: 20 };

// Point reads the plugin below fails as the SDK fails them once its own retries of a lost connection are
// spent (ten, a second apart: too slow to provoke through the proxy). Queries run no operation plugins.
let lostConnections: { operationType: string; left: number } | undefined;
const lostConnection: PluginConfig = {
  on: 'operation' as PluginConfig['on'],
  plugin: (context, _diagnostics, next) => {
    if (lostConnections && lostConnections.left > 0 && context.operationType === lostConnections.operationType) {
      lostConnections.left--;
      return Promise.reject(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
    }
    return next(context);
  },
};

// Cosmos DB cuts a query's answer into pages of its own (past 4 MB or its time budget, say): set, this
// many items per response page, whatever the store asked for.
let servicePageSize: number | undefined;
const smallPages: PluginConfig = {
  on: 'request' as PluginConfig['on'],
  plugin: (context, _diagnostics, next) => {
    if (servicePageSize !== undefined && context.operationType === 'query' && context.headers) context.headers['x-ms-max-item-count'] = servicePageSize;
    return next(context);
  },
};

beforeAll(async () => {
  env = await startFaultyCosmos({ plugins: [lostConnection, smallPages] });
  aggregates = env.client.database(env.events.database.id).container('aggregates');
  direct = new CosmosOpaqueStore(env.directEvents.database.container('aggregates'));
  opaque = new CosmosOpaqueStore(aggregates, { retries });
  // The client's first calls on a container fetch its metadata: make them before a test counts requests.
  const warm = `warm-${randomUUID()}`;
  await opaque.put(doc(warm, 's', 1));
  await opaque.get(warm, 's');
  await opaque.query({ pk: warm });
  await opaque.query({ index: 1, pk: warm });
  await opaque.delete(warm, 's');
  await opaque.putIfNewer(doc(warm, 's', 1));
  await env.proxy.settle();
  env.proxy.clearRecords();
});
afterEach(() => {
  lostConnections = undefined;
  servicePageSize = undefined;
  env.proxy.clearRules();
  env.proxy.clearRecords();
});
afterAll(() => env?.close());

function doc(pk: string, sk: string, version?: number, text = `v${version ?? 0}`): OpaqueData {
  return { pk, sk, version, body: bytes(text), gsi: { 1: { pk: `g-${pk}`, sk } } };
}

/** What the server holds at `(pk, sk)`, read past the proxy: `version:text`, or undefined. */
async function stored(pk: string, sk: string): Promise<string | undefined> {
  try {
    const found = await direct.get(pk, sk);
    return `${found.version ?? 0}:${new TextDecoder().decode(found.body)}`;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** Kind, status the client got and the server's own answer, per request of the given kinds. */
async function requests(...kinds: CosmosRequestKind[]): Promise<Array<[CosmosRequestKind, number | string, number | undefined]>> {
  await env.proxy.settle();
  return env.proxy.records.filter((r) => kinds.includes(r.kind)).map((r) => [r.kind, r.status, r.upstreamStatus]);
}

const fail = (err: unknown) => err;
const status408: FaultAction = { type: 'status', status: 408 };
const status503: FaultAction = { type: 'status', status: 503 };
const resetBefore: FaultAction = { type: 'reset', when: 'before' };
const resetAfter: FaultAction = { type: 'reset', when: 'after' };

describe('get under faults', () => {
  let pk: string;
  beforeAll(async () => {
    pk = `get-${randomUUID()}`;
    await direct.put(doc(pk, 's', 3, 'three'));
  });

  // The SDK retries a read after a 503 once and after a 408 never: the rest are the store's.
  it.each<[string, FaultAction, Array<number | string>]>([
    ['408s', status408, [408, 408, 200]],
    ['503s', status503, [503, 503, 200]],
    // The SDK retries this one itself, after its fixed 1 s pause.
    ['a connection reset before the server', resetBefore, ['reset', 200]],
  ])('retries through %s and returns the document', async (_label, action, expected) => {
    env.proxy.addRule({ kind: 'read', times: expected.length - 1, action });
    const found = await opaque.get(pk, 's');
    expect(new TextDecoder().decode(found.body)).toBe('three');
    expect((await requests('read')).map(([, status]) => status)).toEqual(expected);
  });

  it('retries a lost connection once the SDK has given up on it', async () => {
    lostConnections = { operationType: 'read', left: 2 };
    expect((await opaque.get(pk, 's')).version).toBe(3);
    expect(lostConnections.left).toBe(0);
    expect(await requests('read')).toEqual([['read', 200, 200]]);
  });

  it('still answers NotFoundError for a missing document, without retrying it', async () => {
    await expect(opaque.get(pk, 'missing')).rejects.toBeInstanceOf(NotFoundError);
    expect(await requests('read')).toEqual([['read', 404, 404]]);
  });
});

describe('query under faults', () => {
  let pk: string;
  const sks = ['a', 'b', 'c', 'd', 'e'];
  beforeAll(async () => {
    pk = `query-${randomUUID()}`;
    for (const sk of sks) await direct.put(doc(pk, sk, 1, sk));
  });
  const bodies = (items: OpaqueData[]) => items.map((item) => new TextDecoder().decode(item.body));

  it.each<[string, FaultAction, Array<number | string>]>([
    ['408s', status408, [408, 408, 200]],
    ['503s', status503, [503, 503, 200]],
    ['a connection reset before the server', resetBefore, ['reset', 200]],
  ])('retries through %s, on the main key and on a secondary index', async (_label, action, expected) => {
    env.proxy.addRule({ kind: 'query', times: expected.length - 1, action });
    expect(bodies((await opaque.query({ pk })).items)).toEqual(sks);
    expect((await requests('query')).map(([, status]) => status)).toEqual(expected);

    env.proxy.clearRecords();
    env.proxy.addRule({ kind: 'query', times: expected.length - 1, action });
    expect(bodies((await opaque.query({ index: 1, pk: `g-${pk}` })).items)).toEqual(sks);
    expect((await requests('query')).map(([, status]) => status)).toEqual(expected);
  });

  it('runs the query again from its first response page when a later one fails: nothing of the first is lost', async () => {
    servicePageSize = 2;
    const later = (r: { headers: Record<string, unknown> }) => r.headers['x-ms-continuation'] !== undefined;
    for (const query of [{ pk }, { index: 1, pk: `g-${pk}` }]) {
      env.proxy.clearRecords();
      env.proxy.addRule({ kind: 'query', match: later, times: 1, action: status408 });
      const page = await opaque.query(query);
      expect(bodies(page.items)).toEqual(sks);
      expect(page.continuationToken).toBeUndefined();
      expect((await requests('query')).map(([, status]) => status)).toEqual([200, 408, 200, 200, 200]);
    }
  });

  it('retries one page of a paged query, which then goes on from where it was: every item once', async () => {
    const first = await opaque.query({ pk, limit: 2 });
    env.proxy.addRule({ kind: 'query', times: 2, action: status408 });
    const second = await opaque.query({ pk, limit: 2, continuationToken: first.continuationToken });
    const third = await opaque.query({ pk, limit: 2, continuationToken: second.continuationToken });
    expect([first, second, third].flatMap((page) => bodies(page.items))).toEqual(sks);
    expect(third.continuationToken).toBeUndefined();
    expect((await requests('query')).map(([, status]) => status)).toEqual([200, 408, 408, 200, 200]);
  });
});

describe('put under faults', () => {
  it.each<[string, FaultAction, number | string]>([
    ['408s', status408, 408],
    ['503s', status503, 503],
    ['connection resets before the server', resetBefore, 'reset'],
  ])('retries through %s and stores the document', async (_label, action, status) => {
    const pk = `put-${randomUUID()}`;
    env.proxy.addRule({ kind: 'write', times: 2, action });
    await opaque.put(doc(pk, 's', 1, 'ours'));
    expect(await requests('write')).toEqual([
      ['write', status, undefined],
      ['write', status, undefined],
      ['write', 201, 201],
    ]);
    expect(await stored(pk, 's')).toBe('1:ours');
  });

  it.each<[string, FaultAction, number | string]>([
    ['a connection reset after the server ran it (a lost acknowledgement)', resetAfter, 'reset'],
    ['a 503 after the server ran it', { type: 'status', status: 503, when: 'after' }, 503],
  ])('succeeds after %s, sending the same upsert again', async (_label, action, status) => {
    const pk = `put-lost-${randomUUID()}`;
    await direct.put(doc(pk, 's', 1, 'old'));
    env.proxy.addRule({ kind: 'write', times: 1, action });
    await opaque.put(doc(pk, 's', 2, 'ours'));
    expect(await requests('write')).toEqual([
      ['write', status, 200],
      ['write', 200, 200],
    ]);
    expect(await stored(pk, 's')).toBe('2:ours');
  });
});

describe('delete under faults', () => {
  it.each<[string, FaultAction, number | string]>([
    ['408s', status408, 408],
    ['503s', status503, 503],
    ['connection resets before the server', resetBefore, 'reset'],
  ])('retries through %s and deletes the document', async (_label, action, status) => {
    const pk = `delete-${randomUUID()}`;
    await direct.put(doc(pk, 's', 1));
    env.proxy.addRule({ kind: 'delete', times: 2, action });
    await opaque.delete(pk, 's');
    expect(await requests('delete')).toEqual([
      ['delete', status, undefined],
      ['delete', status, undefined],
      ['delete', 204, 204],
    ]);
    expect(await stored(pk, 's')).toBeUndefined();
  });

  it('succeeds after a lost acknowledgement: the 404 of the retry is its own earlier delete', async () => {
    const pk = `delete-lost-${randomUUID()}`;
    await direct.put(doc(pk, 's', 1));
    env.proxy.addRule({ kind: 'delete', times: 1, action: resetAfter });
    await opaque.delete(pk, 's');
    expect(await requests('delete')).toEqual([
      ['delete', 'reset', 204],
      ['delete', 404, 404],
    ]);
    expect(await stored(pk, 's')).toBeUndefined();
  });
});

describe('putIfNewer under faults', () => {
  it.each<[string, FaultAction, number | string]>([
    ['408s', status408, 408],
    ['503s', status503, 503],
    ['connection resets before the server', resetBefore, 'reset'],
  ])('retries a write refused through %s by reading again, then writes', async (_label, action, status) => {
    const pk = `pin-${randomUUID()}`;
    await direct.put(doc(pk, 's', 1, 'old'));
    env.proxy.addRule({ kind: 'write', times: 2, action });
    expect(await opaque.putIfNewer(doc(pk, 's', 2, 'ours'))).toBe(true);
    expect(await requests('read', 'write')).toEqual([
      ['read', 200, 200],
      ['write', status, undefined],
      ['read', 200, 200],
      ['write', status, undefined],
      ['read', 200, 200],
      ['write', 200, 200],
    ]);
    expect(await stored(pk, 's')).toBe('2:ours');
  });

  it.each<[string, FaultAction, Array<number | string>]>([
    ['408s', status408, [408, 408, 404]],
    ['503s', status503, [503, 503, 404]],
  ])('retries its read through %s', async (_label, action, reads) => {
    const pk = `pin-read-${randomUUID()}`;
    env.proxy.addRule({ kind: 'read', times: 2, action });
    expect(await opaque.putIfNewer(doc(pk, 's', 1, 'ours'))).toBe(true);
    expect(await requests('read', 'write')).toEqual([...reads.map((s) => ['read', s, s === 404 ? 404 : undefined]), ['write', 201, 201]]);
    expect(await stored(pk, 's')).toBe('1:ours');
  });

  it.each<[string, boolean, number]>([
    ['a create', false, 201],
    ['an etag-checked replace', true, 200],
  ])('resolves the lost acknowledgement of %s as success: the re-read finds its own version', async (_label, before, applied) => {
    const pk = `pin-lost-${randomUUID()}`;
    if (before) await direct.put(doc(pk, 's', 1, 'old'));
    env.proxy.addRule({ kind: 'write', times: 1, action: resetAfter });
    expect(await opaque.putIfNewer(doc(pk, 's', 2, 'ours'))).toBe(true);
    // No second write: the re-read found version 2 stored, exactly as sent.
    expect(await requests('read', 'write')).toEqual([
      ['read', before ? 200 : 404, before ? 200 : 404],
      ['write', 'reset', applied],
      ['read', 200, 200],
    ]);
    expect(await stored(pk, 's')).toBe('2:ours');
  });

  it.each<[string, FaultAction, number | string, number | undefined]>([
    ['a lost acknowledgement', resetAfter, 'reset', 201],
    ['a refused write', status503, 503, undefined],
  ])('never writes over a newer version stored between %s and the retry', async (_label, action, status, upstream) => {
    const pk = `pin-newer-${randomUUID()}`;
    const held = gate();
    let reads = 0;
    env.proxy.addRule({ kind: 'write', times: 1, action });
    // Hold the re-read until another writer has stored version 3.
    env.proxy.addRule({ kind: 'read', match: () => ++reads === 2, action: { type: 'latency', until: held.promise } });
    const putting = opaque.putIfNewer(doc(pk, 's', 2, 'ours')).catch(fail);
    try {
      await until(() => env.proxy.count({ kind: 'read', fault: 'latency' }) === 1);
      await direct.put(doc(pk, 's', 3, 'theirs'));
    } finally {
      held.open();
    }
    expect(await putting).toBe(false);
    expect(await requests('read', 'write')).toEqual([
      ['read', 404, 404],
      ['write', status, upstream],
      ['read', 200, 200],
    ]);
    expect(await stored(pk, 's')).toBe('3:theirs');
  });
});

describe('retries running out', () => {
  const few = { ...retries, maxAttempts: 3 };
  const cases: Array<[string, CosmosRequestKind, (store: OpaqueStore, pk: string) => Promise<unknown>, string]> = [
    ['get', 'read', (store, pk) => store.get(pk, 's'), 'get (pk'],
    ['query', 'query', (store, pk) => store.query({ pk }), 'query index 0 pk'],
    ['put', 'write', (store, pk) => store.put(doc(pk, 's', 1)), 'put (pk'],
    ['delete', 'delete', (store, pk) => store.delete(pk, 's'), 'delete (pk'],
    ['putIfNewer', 'write', (store, pk) => store.putIfNewer(doc(pk, 's', 2)), 'put (pk'],
  ];

  it.each(cases)('%s fails with an EventStoreError naming the call, the last failure as its cause', async (_op, kind, call, named) => {
    const pk = `out-${randomUUID()}`;
    await direct.put(doc(pk, 's', 1));
    env.proxy.addRule({ kind, action: status408 });
    const err = await call(new CosmosOpaqueStore(aggregates, { retries: few }), pk).catch(fail);
    expect(err).toBeInstanceOf(EventStoreError);
    expect((err as Error).message.startsWith(named)).toBe(true);
    expect((err as Error).cause).toMatchObject({ code: 408 });
    expect(await requests(kind)).toEqual(Array.from({ length: 3 }, () => [kind, 408, undefined]));
    expect(await stored(pk, 's')).toBe('1:v1');
  });

  it.each(cases)('%s stops waiting to retry as soon as the signal aborts, with an AbortError', async (_op, kind, call) => {
    const pk = `abort-${randomUUID()}`;
    await direct.put(doc(pk, 's', 1));
    const patient = new CosmosOpaqueStore(aggregates, { retries: { initialDelayMs: 20_000, maxDelayMs: 20_000 } });
    env.proxy.addRule({ kind, action: status408 });
    const controller = new AbortController();
    const started = Date.now();
    const calling = call(withSignal(patient, controller.signal), pk).catch(fail);
    await until(() => env.proxy.count({ kind, status: 408 }) === 1);
    // The proxy records the answer as it sends it: give the client time to hear it and start its wait.
    await new Promise((resolve) => setTimeout(resolve, 100));
    controller.abort();
    expect(await calling).toMatchObject({ name: 'AbortError' });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await requests(kind)).toEqual([[kind, 408, undefined]]);
  });
});

/** The store's calls with `abortSignal` added to their options. */
function withSignal(store: CosmosOpaqueStore, abortSignal: AbortSignal): OpaqueStore {
  return {
    put: (d) => store.put(d, { abortSignal }),
    putIfNewer: (d) => store.putIfNewer(d, { abortSignal }),
    get: (pk, sk) => store.get(pk, sk, { abortSignal }),
    delete: (pk, sk) => store.delete(pk, sk, { abortSignal }),
    query: (q) => store.query(q, { abortSignal }),
  };
}

describe('EventStoreModule', () => {
  it('gives its retries option to the aggregates store too', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        CosmosModule.forRoot({
          endpoint: env.proxy.endpoint,
          key: env.cosmos.key,
          databaseId: env.events.database.id,
          clientOptions: { connectionPolicy: { enableBackgroundEndpointRefreshing: false } },
        }),
        EventStoreModule.forRoot({ retries: { maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 1 } }),
      ],
    }).compile();
    const app = await moduleRef.createNestApplication({ logger: false }).init();
    try {
      const store = app.get<OpaqueStore>(OPAQUE_STORE);
      const pk = `module-${randomUUID()}`;
      await store.put(doc(pk, 's', 1));
      env.proxy.clearRecords();
      env.proxy.addRule({ kind: 'read', action: status408 });
      expect(await store.get(pk, 's').catch(fail)).toBeInstanceOf(EventStoreError);
      expect(env.proxy.count({ kind: 'read' })).toBe(2);
    } finally {
      await app.close();
    }
  });
});
