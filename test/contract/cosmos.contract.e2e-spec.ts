/*
 * The contract suite on the Cosmos DB stores against the embedded server, plus what only the wire shows:
 * - where SPEC §3-4 says "no request", no request leaves the client. Requests are counted by an
 *   @azure/cosmos request plugin, which sees every network attempt (retries and query plans included);
 * - how service answers are classified: only a 409 is a conflict. Answers the embedded server never
 *   gives (throttling, timeouts, 207 with other statuses) are injected by a plugin in place of the network.
 */
import {
  CosmosClient,
  ErrorResponse,
  TimeoutError,
  type Container,
  type PluginConfig,
  type RequestContext,
  type Response,
} from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import {
  ConcurrencyError,
  CosmosEventStore,
  CosmosOpaqueStore,
  EventStoreError,
  isConflict,
  NotFoundError,
  ValidationError,
  type EventRecord,
  type OperationOptions,
} from '../../src/index.js';
import { clientWithPlugins, startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import { describeStoreContract } from './store-contract.js';
import { describeLifecycleContract } from './lifecycle-contract.js';

interface SentRequest {
  operationType?: string;
  resourceType?: string;
  headers: Record<string, unknown>;
}

let fixture: CosmosFixture;
let counted: CosmosClient;
let events: Container;
let aggregates: Container;
const sent: SentRequest[] = [];
/** Called after each answered request; lets a test act between two requests of one call. */
let afterResponse: ((request: SentRequest) => void) | undefined;

const countRequests: PluginConfig = {
  on: 'request',
  plugin: async (context, _diagnostics, next) => {
    const request = { operationType: context.operationType, resourceType: context.resourceType, headers: { ...context.headers } };
    sent.push(request);
    const response = await next(context);
    afterResponse?.(request);
    return response;
  },
};

beforeAll(async () => {
  fixture = await startCosmosFixture();
  counted = clientWithPlugins(
    {
      endpoint: fixture.cosmos.endpoint,
      key: fixture.cosmos.key,
      // No timer-driven account refresh may add a request while a test counts.
      connectionPolicy: { enableBackgroundEndpointRefreshing: false },
    },
    [countRequests],
  );
  const database = counted.database(fixture.events.database.id);
  events = database.container(fixture.events.id);
  aggregates = database.container(fixture.aggregates.id);
  // The client's first call reads the account: make it before anything is counted.
  await events.read();
});

afterAll(async () => {
  counted?.dispose();
  await fixture?.close();
});

describeStoreContract('CosmosEventStore + CosmosOpaqueStore', ({ withOpaqueStore = true, ...options }) => {
  const opaque = new CosmosOpaqueStore(aggregates);
  const store = new CosmosEventStore(events, { ...options, ...(withOpaqueStore && { opaqueStore: opaque }) });
  return { store, opaque };
});

describeLifecycleContract('CosmosEventStore', () => ({
  store: new CosmosEventStore(events),
  putRaw: async (doc) => {
    await events.items.create(doc);
  },
}));

describe('CosmosEventStore and CosmosOpaqueStore on the wire', () => {
  const record = (version: number): EventRecord => ({ version, data: new TextEncoder().encode(`e${version}`) });
  const aborted = (): OperationOptions => {
    const controller = new AbortController();
    controller.abort();
    return { abortSignal: controller.signal };
  };

  async function drain(stream: AsyncIterable<EventRecord>): Promise<EventRecord[]> {
    const records: EventRecord[] = [];
    for await (const r of stream) records.push(r);
    return records;
  }

  /** The requests `fn` sends; a call expected to fail catches its own rejection. */
  async function requestsOf(fn: () => Promise<unknown>): Promise<SentRequest[]> {
    const before = sent.length;
    await fn();
    return sent.slice(before);
  }

  let store: CosmosEventStore;
  let opaque: CosmosOpaqueStore;
  beforeEach(() => {
    opaque = new CosmosOpaqueStore(aggregates);
    store = new CosmosEventStore(events, { opaqueStore: opaque });
  });

  it('counts what a real call sends (the counter works)', async () => {
    const id = `wire-${randomUUID()}`;
    const save = await requestsOf(() => store.save(id, [record(1)]));
    expect(save.map((r) => r.operationType)).toEqual(['batch']);
    expect((await requestsOf(() => opaque.put({ pk: id, sk: 's', body: new Uint8Array(1) }))).length).toBe(1);
  });

  it('sends nothing for zero records', async () => {
    const id = `wire-${randomUUID()}`;
    expect(await requestsOf(() => store.save(id, []))).toEqual([]);
  });

  it('sends nothing for loadTail with n <= 0', async () => {
    const id = `wire-${randomUUID()}`;
    await store.save(id, [record(1)]);
    for (const n of [0, -5]) {
      let tail: unknown;
      expect(await requestsOf(async () => (tail = await store.loadTail(id, n)))).toEqual([]);
      expect(tail).toEqual({ records: [] });
    }
  });

  it('sends nothing when validation fails', async () => {
    const id = `wire-${randomUUID()}`;
    const refused: Array<() => Promise<unknown>> = [
      () => store.save('', [record(1)]),
      () => store.save(id, [record(1), record(0)]),
      () => store.save(id, [record(1), record(1)]),
      () => store.save(id, [{ version: 1, data: new Uint8Array(0), ttl: -1 }]),
      () => store.save(id, [record(1), { version: 2, data: new Uint8Array(2 * 1024 * 1024) }]),
      () => store.load(''),
      () => store.loadTail('', 3),
      () => drain(store.readStream('')),
      () => drain(store.readStream(id, { pageSize: 0 })),
      () => store.saveAggregate({ keys: () => ({ pk: id, sk: '' }) }),
      () => opaque.put({ pk: id, sk: 's', body: new Uint8Array(0), gsi: { 21: { pk: 'x' } } }),
      () => opaque.get(id, ''),
      () => opaque.delete('', 's'),
      () => opaque.query({ index: 21, pk: id }),
      () => opaque.query({ pk: id, sk: { op: 'between', value: 'a' } }),
      () => opaque.query({ pk: id, limit: 1, continuationToken: '{"token":"-RID:~x#RT:1"}' }),
    ];
    for (const call of refused) {
      let error: unknown;
      const requests = await requestsOf(() => call().catch((err: unknown) => (error = err)));
      expect(error).toBeInstanceOf(ValidationError);
      expect(requests).toEqual([]);
    }
  });

  it('sends nothing with an already-aborted signal', async () => {
    const id = `wire-${randomUUID()}`;
    const calls: Array<() => Promise<unknown>> = [
      () => store.save(id, [record(1)], aborted()),
      () => store.load(id, aborted()),
      () => store.loadTail(id, 2, aborted()),
      () => drain(store.readStream(id, aborted())),
      () => store.saveAggregate({ keys: () => ({ pk: id, sk: 's' }) }, aborted()),
      () => opaque.put({ pk: id, sk: 's', body: new Uint8Array(0) }, aborted()),
      () => opaque.get(id, 's', aborted()),
      () => opaque.delete(id, 's', aborted()),
      () => opaque.query({ pk: id }, aborted()),
      () => opaque.query({ index: 1, pk: id }, aborted()),
    ];
    for (const call of calls) {
      let error: unknown;
      const requests = await requestsOf(() => call().catch((err: unknown) => (error = err)));
      expect(error).toMatchObject({ name: 'AbortError' });
      expect(requests).toEqual([]);
    }
  });

  it('stops between chunks when the signal aborts, leaving whole chunks only', async () => {
    const id = `wire-${randomUUID()}`;
    const controller = new AbortController();
    afterResponse = (request) => {
      if (request.operationType === 'batch') controller.abort();
    };
    let error: unknown;
    try {
      const requests = await requestsOf(() =>
        store
          .save(id, Array.from({ length: 250 }, (_, i) => record(i + 1)), { abortSignal: controller.signal })
          .catch((err: unknown) => (error = err)),
      );
      expect(requests.filter((r) => r.operationType === 'batch')).toHaveLength(1);
    } finally {
      afterResponse = undefined;
    }
    expect(error).toMatchObject({ name: 'AbortError' });
    const { records } = await store.load(id);
    expect(records.map((r) => r.version)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
  });

  it('loads with one partition-scoped query', async () => {
    const id = `wire-${randomUUID()}`;
    await store.save(id, [record(1), record(2)]);
    const queries = (await requestsOf(() => store.load(id))).filter((r) => r.operationType === 'query');
    expect(queries).toHaveLength(1);
    expect(queries[0].headers['x-ms-documentdb-partitionkey']).toBe(JSON.stringify([id]));
  });

  it('readStream sends nothing until iterated, then one partition-scoped query per page of pageSize', async () => {
    const id = `wire-${randomUUID()}`;
    await store.save(id, Array.from({ length: 250 }, (_, i) => record(i + 1)));
    const stream = store.readStream(id, { pageSize: 100 });
    expect(await requestsOf(async () => stream)).toEqual([]);
    const first = (await requestsOf(async () => {
      for await (const r of stream) if (r.version === 1) break;
    })).filter((r) => r.operationType === 'query');
    expect(first).toHaveLength(1);
    expect(Number(first[0].headers['x-ms-max-item-count'])).toBe(100);
    expect(first[0].headers['x-ms-documentdb-partitionkey']).toBe(JSON.stringify([id]));
    const all = (await requestsOf(() => drain(store.readStream(id, { pageSize: 100 })))).filter((r) => r.operationType === 'query');
    expect(all).toHaveLength(3);
  });

  it('reads the tail with a page size of n and stops after the first page', async () => {
    const id = `wire-${randomUUID()}`;
    await store.save(id, Array.from({ length: 250 }, (_, i) => record(i + 1)));
    const queries = (await requestsOf(() => store.loadTail(id, 5))).filter((r) => r.operationType === 'query');
    expect(queries).toHaveLength(1);
    expect(Number(queries[0].headers['x-ms-max-item-count'])).toBe(5);
    expect(queries[0].headers['x-ms-documentdb-partitionkey']).toBe(JSON.stringify([id]));
  });
});

describe('how CosmosEventStore classifies what the service answers', () => {
  type Next = (context: RequestContext) => Promise<Response<unknown>>;
  /** Rewrites or replaces the answer to a batch or query request; undefined: pass through. */
  let fault: ((context: RequestContext, next: Next) => Promise<Response<unknown>>) | undefined;
  let faulty: CosmosClient;
  let store: CosmosEventStore;

  beforeAll(() => {
    const injectFault: PluginConfig = {
      on: 'request',
      plugin: (context, _diagnostics, next) =>
        fault && (context.operationType === 'batch' || context.operationType === 'query') ? fault(context, next) : next(context),
    };
    faulty = clientWithPlugins(
      {
        endpoint: fixture.cosmos.endpoint,
        key: fixture.cosmos.key,
        connectionPolicy: { retryOptions: { maxRetryAttemptCount: 0, fixedRetryIntervalInMilliseconds: 0, maxWaitTimeInSeconds: 0 } },
      },
      [injectFault],
    );
    // Injected failures never reach the network, so the store takes them for lost connections and retries
    // them: with no wait between attempts, as only the final classification matters here.
    store = new CosmosEventStore(faulty.database(fixture.events.database.id).container(fixture.events.id), {
      retries: { initialDelayMs: 0, maxDelayMs: 0 },
    });
  });
  afterEach(() => {
    fault = undefined;
  });
  afterAll(() => faulty?.dispose());

  const record = (version: number) => ({ version, data: new Uint8Array([version]) });
  const failWith = (code: number) => async () => {
    const err = new ErrorResponse(`injected ${code}`);
    err.code = code;
    throw err;
  };

  it('finds a conflict in the per-operation statuses even when the batch answers 200', async () => {
    const id = `cls-${randomUUID()}`;
    await store.save(id, [record(1)]);
    fault = async (context, next) => ({ ...(await next(context)), code: 200 });
    const err = await store.save(id, [record(2), record(1)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConcurrencyError);
    expect((err as ConcurrencyError).versions).toEqual([1]);
  });

  it('treats a failed operation other than 409 as a failure that is not a conflict', async () => {
    const id = `cls-${randomUUID()}`;
    fault = async () => ({ headers: {}, code: 207, result: [{ statusCode: 424 }, { statusCode: 400 }] });
    const err = await store.save(id, [record(1), record(2)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EventStoreError);
    expect(isConflict(err)).toBe(false);
    expect((err as Error).message).toContain('400');
  });

  it('treats an answer missing operation results as a failure', async () => {
    const id = `cls-${randomUUID()}`;
    fault = async () => ({ headers: {}, code: 200, result: [{ statusCode: 201 }] });
    const err = await store.save(id, [record(1), record(2)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EventStoreError);
    expect(isConflict(err)).toBe(false);
  });

  it.each([
    ['throttling (429)', failWith(429)],
    ['a bad request (400)', failWith(400)],
    ['a server error (500)', failWith(500)],
    [
      'a timeout',
      async () => {
        throw new TimeoutError('injected timeout');
      },
    ],
  ])('reports %s as an EventStoreError that is not a conflict', async (_label, injected) => {
    const id = `cls-${randomUUID()}`;
    fault = injected;
    const readAll = async () => {
      for await (const r of store.readStream(id)) void r;
    };
    for (const call of [() => store.save(id, [record(1)]), () => store.load(id), () => store.loadTail(id, 1), readAll]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EventStoreError);
      expect(err).not.toBeInstanceOf(ValidationError);
      expect(isConflict(err)).toBe(false);
    }
  });

  it('reports a missing container as an EventStoreError that is not a conflict', async () => {
    const missing = new CosmosEventStore(counted.database(fixture.events.database.id).container(`missing-${randomUUID()}`));
    for (const call of [() => missing.save('x', [record(1)]), () => missing.load('x'), () => missing.loadTail('x', 2)]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EventStoreError);
      expect(isConflict(err)).toBe(false);
    }
  });

  it('tells a missing aggregates container from a missing document', async () => {
    const id = `missing-${randomUUID()}`;
    const missing = new CosmosOpaqueStore(counted.database(fixture.events.database.id).container(id));
    for (const call of [() => missing.get('p', 's'), () => missing.delete('p', 's')]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EventStoreError);
      expect(err).not.toBeInstanceOf(NotFoundError);
      expect((err as Error).message).toContain(id);
    }
  });
});
