/*
 * save() under each fault the proxy injects. Every test checks what is really stored (read straight from
 * the server, past the proxy) and which requests went out, so a test cannot pass without the fault having
 * happened as described.
 */
import { randomUUID } from 'node:crypto';
import {
  ConcurrencyError,
  CosmosEventStore,
  EventStoreError,
  isConflict,
  isOutcomeUnknown,
  WriteOutcomeUnknownError,
  type EventRecord,
} from '../../src/index.js';
import { type FaultAction } from '../../src/testing.js';
import type { PluginConfig } from '@azure/cosmos';
import { bytes, gate, proxiedClient, startFaultyCosmos, until, type FaultyCosmos } from '../support/faults.js';

let env: FaultyCosmos;
let store: CosmosEventStore;
// Short waits between the store's own retries: the tests are about what is retried, not how long it waits.
const retries = { initialDelayMs: 5, maxDelayMs: 20 };

// Batch answers (or failures) the client has heard: a save aborted after one is waiting, no longer in flight.
let batchesHeard = 0;
const hearing: PluginConfig = {
  on: 'request' as PluginConfig['on'],
  plugin: async (context, _diagnostics, next) => {
    try {
      return await next(context);
    } finally {
      if (context.operationType === 'batch') batchesHeard++;
    }
  },
};

/** Resolves once the client has heard `n` batch answers in all and the store has gone on to wait. */
async function heardBatches(n: number): Promise<void> {
  await until(() => batchesHeard === n);
  // The store's catch and the start of its wait run in the promise jobs after the answer: let them.
  await new Promise((resolve) => setTimeout(resolve, 5));
}

beforeAll(async () => {
  env = await startFaultyCosmos({ plugins: [hearing] });
  store = new CosmosEventStore(env.events, { retries });
});
afterEach(() => {
  env.proxy.clearRules();
  env.proxy.clearRecords();
});
afterAll(() => env?.close());

const records = (from: number, to: number, tag = 'ours'): EventRecord[] =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ version: from + i, data: bytes(`${tag}-${from + i}`) }));

/** What the server holds for the aggregate, read past the proxy: `v -> d`, and how many documents. */
async function stored(id: string): Promise<{ count: number; data: Map<number, string> }> {
  const { resources } = await env.directEvents.items
    .query<{ v: number; d?: string }>({ query: 'SELECT c.v, c.d FROM c WHERE c.a = @a', parameters: [{ name: '@a', value: id }] })
    .fetchAll();
  return { count: resources.length, data: new Map(resources.map((r) => [r.v, Buffer.from(r.d ?? '', 'base64').toString()])) };
}

async function expectStoredExactly(id: string, expected: EventRecord[]): Promise<void> {
  const { count, data } = await stored(id);
  expect(count).toBe(expected.length);
  expect(data).toEqual(new Map(expected.map((r) => [r.version, new TextDecoder().decode(r.data)])));
}

/** Status the client got and the server's own answer, per batch request. */
async function batches(): Promise<Array<[number | string, number | undefined]>> {
  await env.proxy.settle();
  return env.proxy.records.filter((r) => r.kind === 'batch').map((r) => [r.status, r.upstreamStatus]);
}

const fail = (err: unknown) => err;

describe('save under faults', () => {
  it('waits out added latency', async () => {
    const id = `latency-${randomUUID()}`;
    env.proxy.addRule({ kind: 'batch', times: 1, action: { type: 'latency', ms: 120 } });
    await store.save(id, records(1, 3));
    const [batch] = env.proxy.records.filter((r) => r.kind === 'batch');
    expect(batch.answeredAt! - batch.receivedAt).toBeGreaterThanOrEqual(115);
    expect(await batches()).toEqual([[200, 200]]);
    await expectStoredExactly(id, records(1, 3));
  });

  it('is retried by the SDK after a 429, no sooner than x-ms-retry-after-ms says', async () => {
    const id = `throttled-${randomUUID()}`;
    env.proxy.addRule({ kind: 'batch', times: 2, action: { type: 'status', status: 429, retryAfterMs: 250 } });
    await store.save(id, records(1, 2));
    expect(await batches()).toEqual([
      [429, undefined],
      [429, undefined],
      [200, 200],
    ]);
    const [first, second, third] = env.proxy.records.filter((r) => r.kind === 'batch');
    // A lower bound only (the retry-after honoured), with 5 ms of timer slack.
    expect(second.receivedAt - first.answeredAt!).toBeGreaterThanOrEqual(245);
    expect(third.receivedAt - second.answeredAt!).toBeGreaterThanOrEqual(245);
    await expectStoredExactly(id, records(1, 2));
  });

  it('fails as a whole, and not as a conflict, once the SDK gives up on 429; the store adds no retries of its own', async () => {
    const id = `throttled-out-${randomUUID()}`;
    const client = proxiedClient(env.cosmos, env.proxy, { connectionPolicy: { retryOptions: { maxRetryAttemptCount: 2 } } });
    try {
      const throttled = new CosmosEventStore(client.database(env.events.database.id).container('events'), { retries });
      env.proxy.addRule({ kind: 'batch', action: { type: 'status', status: 429, retryAfterMs: 1 } });
      const err = await throttled.save(id, records(1, 2)).catch(fail);
      expect(err).toBeInstanceOf(EventStoreError);
      expect(isConflict(err)).toBe(false);
      expect(isOutcomeUnknown(err)).toBe(false);
      expect(await batches()).toHaveLength(3);
      await expectStoredExactly(id, []);
    } finally {
      client.dispose();
    }
  });

  it.each<[string, FaultAction]>([
    ['503 before the server', { type: 'status', status: 503 }],
    ['408 before the server', { type: 'status', status: 408 }],
    ['a connection reset before the server', { type: 'reset', when: 'before' }],
  ])('retries after %s and stores the chunk once', async (_label, action) => {
    const id = `before-${randomUUID()}`;
    env.proxy.addRule({ kind: 'batch', times: 2, action });
    await store.save(id, records(1, 5));
    const sent = await batches();
    expect(sent).toHaveLength(3);
    expect(sent.slice(0, 2).every(([, upstream]) => upstream === undefined)).toBe(true);
    expect(sent[2]).toEqual([200, 200]);
    await expectStoredExactly(id, records(1, 5));
  });

  it.each<[string, FaultAction]>([
    ['a connection reset after the server ran it (a lost acknowledgement)', { type: 'reset', when: 'after' }],
    ['503 after the server ran it', { type: 'status', status: 503, when: 'after' }],
    ['408 after the server ran it', { type: 'status', status: 408, when: 'after' }],
  ])('succeeds without a duplicate after %s', async (_label, action) => {
    const id = `after-${randomUUID()}`;
    env.proxy.addRule({ kind: 'batch', times: 1, action });
    await store.save(id, records(1, 5));
    // The first attempt was applied; the retry met our own documents (409, answered 207) and the read-back
    // proved them ours.
    const sent = await batches();
    expect(sent[0][1]).toBe(200);
    expect(sent[1]).toEqual([207, 207]);
    expect(sent).toHaveLength(2);
    expect(env.proxy.count({ kind: 'query' })).toBe(1);
    await expectStoredExactly(id, records(1, 5));
    expect((await store.load(id)).records).toEqual(records(1, 5));
  });

  it('keeps the same expiry on the retry, so the read-back matches (store-level TTL)', async () => {
    const id = `ttl-${randomUUID()}`;
    // The retry waits at least 1.1 s (half its delay, plus jitter), past a second boundary: an expiry
    // recomputed for the retry would differ from the stored one.
    const expiring = new CosmosEventStore(env.events, { retries: { initialDelayMs: 2200, maxDelayMs: 2200 }, eventTtlSeconds: 3600 });
    env.proxy.addRule({ kind: 'batch', times: 1, action: { type: 'reset', when: 'after' } });
    await expiring.save(id, records(1, 2));
    expect(await batches()).toEqual([
      ['reset', 200],
      [207, 207],
    ]);
    expect((await expiring.load(id)).records.map((r) => r.version)).toEqual([1, 2]);
  });

  it('reports a ConcurrencyError when the lost answer was a conflict with another writer', async () => {
    const id = `theirs-${randomUUID()}`;
    const other = new CosmosEventStore(env.directEvents);
    await other.save(id, records(1, 2, 'theirs'));
    env.proxy.addRule({ kind: 'batch', times: 1, action: { type: 'reset', when: 'after' } });
    const err = await store.save(id, records(2, 4)).catch(fail);
    expect(err).toBeInstanceOf(ConcurrencyError);
    expect((err as ConcurrencyError).versions).toEqual([2]);
    expect(await batches()).toEqual([
      ['reset', 207],
      [207, 207],
    ]);
    await expectStoredExactly(id, records(1, 2, 'theirs'));
  });

  it('reports a ConcurrencyError when another writer took the versions between a failed attempt and its retry', async () => {
    const id = `between-${randomUUID()}`;
    const held = gate();
    env.proxy.addRule({ kind: 'batch', times: 1, action: { type: 'status', status: 503 } });
    env.proxy.addRule({ kind: 'batch', times: 1, action: { type: 'latency', until: held.promise } });
    const saving = store.save(id, records(1, 3)).catch(fail);
    await until(() => env.proxy.count({ fault: 'latency' }) === 1);
    await new CosmosEventStore(env.directEvents).save(id, records(1, 3, 'theirs'));
    held.open();
    const err = await saving;
    expect(err).toBeInstanceOf(ConcurrencyError);
    expect((err as ConcurrencyError).versions).toEqual([1, 2, 3]);
    await expectStoredExactly(id, records(1, 3, 'theirs'));
  });

  it('keeps a conflict without an earlier unknown outcome a ConcurrencyError, even with identical bytes', async () => {
    const id = `same-${randomUUID()}`;
    await new CosmosEventStore(env.directEvents).save(id, records(1, 2));
    const err = await store.save(id, records(1, 2)).catch(fail);
    expect(err).toBeInstanceOf(ConcurrencyError);
    expect(env.proxy.count({ kind: 'query' })).toBe(0); // no read-back without a reason
  });

  it('throws WriteOutcomeUnknownError when the retries run out with the outcome still unknown', async () => {
    const applied = `unknown-applied-${randomUUID()}`;
    env.proxy.addRule({ kind: 'batch', action: { type: 'reset', when: 'after' } });
    const err = await store.save(applied, records(1, 2)).catch(fail);
    expect(err).toBeInstanceOf(WriteOutcomeUnknownError);
    expect(err).toMatchObject({ aggregateId: applied, versions: [1, 2] });
    expect(isConflict(err)).toBe(false);
    expect(await batches()).toHaveLength(5);
    await expectStoredExactly(applied, records(1, 2)); // it was in fact applied, by the first attempt

    env.proxy.clearRules();
    env.proxy.clearRecords();
    const refused = `unknown-refused-${randomUUID()}`;
    env.proxy.addRule({ kind: 'batch', action: { type: 'status', status: 503 } });
    expect(await store.save(refused, records(1, 2)).catch(fail)).toBeInstanceOf(WriteOutcomeUnknownError);
    await expectStoredExactly(refused, []); // ... and here it was not: the caller must load to know
  });

  it('does not retry a failure that is not transient', async () => {
    const id = `bad-${randomUUID()}`;
    env.proxy.addRule({ kind: 'batch', action: { type: 'status', status: 400 } });
    const err = await store.save(id, records(1, 1)).catch(fail);
    expect(err).toBeInstanceOf(EventStoreError);
    expect(isOutcomeUnknown(err)).toBe(false);
    expect(await batches()).toHaveLength(1);
  });

  it('resolves a lost acknowledgement per chunk: the chunks around it are written once each', async () => {
    const id = `chunks-${randomUUID()}`;
    let seen = 0;
    env.proxy.addRule({ kind: 'batch', match: () => ++seen === 2, action: { type: 'reset', when: 'after' } });
    await store.save(id, records(1, 250));
    expect(await batches()).toEqual([
      [200, 200],
      ['reset', 200],
      [207, 207],
      [200, 200],
    ]);
    await expectStoredExactly(id, records(1, 250));
  });

  it('stops waiting between retries as soon as the signal aborts', async () => {
    const id = `abort-${randomUUID()}`;
    const patient = new CosmosEventStore(env.events, { retries: { initialDelayMs: 20_000, maxDelayMs: 20_000 } });
    // 449: refused, surely not applied, so the abort is a plain one (after a 503, see the next test).
    env.proxy.addRule({ kind: 'batch', action: { type: 'status', status: 449 } });
    const controller = new AbortController();
    const heard = batchesHeard;
    const saving = patient.save(id, records(1, 1), { abortSignal: controller.signal }).catch(fail);
    // Only once the client has heard the 449: an abort before that is one in flight, an unknown outcome.
    await heardBatches(heard + 1);
    expect(env.proxy.count({ kind: 'batch', status: 449 })).toBe(1);
    controller.abort();
    expect(await saving).toMatchObject({ name: 'AbortError' });
    expect(await batches()).toHaveLength(1);
  });

  it('reports an abort while waiting to retry after an unknown outcome as WriteOutcomeUnknownError, not a bare abort', async () => {
    const id = `abort-unknown-${randomUUID()}`;
    const patient = new CosmosEventStore(env.events, { retries: { initialDelayMs: 20_000, maxDelayMs: 20_000 } });
    env.proxy.addRule({ kind: 'batch', times: 1, action: { type: 'reset', when: 'after' } });
    const controller = new AbortController();
    const heard = batchesHeard;
    const saving = patient.save(id, records(1, 2), { abortSignal: controller.signal }).catch(fail);
    // Once the client has heard the reset and started its 10-20 s wait.
    await heardBatches(heard + 1);
    expect(env.proxy.count({ kind: 'batch', status: 'reset' })).toBe(1);
    controller.abort();
    const err = await saving;
    expect(err).toBeInstanceOf(WriteOutcomeUnknownError);
    expect(err).toMatchObject({ aggregateId: id, versions: [1, 2] });
    expect((err as Error).cause).toMatchObject({ name: 'AbortError' });
    expect(await batches()).toEqual([['reset', 200]]);
    await expectStoredExactly(id, records(1, 2)); // it did land
  });

  it('reports an abort while the batch is in flight as WriteOutcomeUnknownError: the server may still run it', async () => {
    const id = `abort-in-flight-${randomUUID()}`;
    const held = gate();
    env.proxy.addRule({ kind: 'batch', times: 1, action: { type: 'latency', until: held.promise } });
    const controller = new AbortController();
    const saving = store.save(id, records(1, 2), { abortSignal: controller.signal }).catch(fail);
    try {
      await until(() => env.proxy.count({ kind: 'batch', fault: 'latency' }) === 1);
      controller.abort();
      const err = await saving;
      expect(err).toBeInstanceOf(WriteOutcomeUnknownError);
      expect(err).toMatchObject({ aggregateId: id, versions: [1, 2] });
      expect((err as Error).cause).toMatchObject({ name: 'AbortError' });
    } finally {
      held.open();
    }
    await env.proxy.settle();
    await expectStoredExactly(id, records(1, 2)); // the request went on without its caller, and landed
  });

  it('reports an abort during the read-back as WriteOutcomeUnknownError with the AbortError as cause', async () => {
    const id = `abort-readback-${randomUUID()}`;
    const held = gate();
    env.proxy.addRule({ kind: 'batch', times: 1, action: { type: 'reset', when: 'after' } });
    env.proxy.addRule({ kind: 'query', times: 1, action: { type: 'latency', until: held.promise } });
    const controller = new AbortController();
    const saving = store.save(id, records(1, 2), { abortSignal: controller.signal }).catch(fail);
    try {
      await until(() => env.proxy.count({ kind: 'query', fault: 'latency' }) === 1);
      controller.abort();
      // The SDK notices the abort when the held answer comes.
      held.open();
      const err = await saving;
      expect(err).toBeInstanceOf(WriteOutcomeUnknownError);
      expect(err).toMatchObject({ aggregateId: id, versions: [1, 2] });
      expect((err as Error).cause).toMatchObject({ name: 'AbortError' });
      expect(await batches()).toEqual([
        ['reset', 200],
        [207, 207],
      ]);
    } finally {
      held.open();
    }
  });
});

describe('save when the SDK retries a write itself', () => {
  // With per-partition automatic failover on the account, @azure/cosmos retries a write after a 503: the
  // 409 of its retry is then the store's first hint, and the call's diagnostics tell it so.
  let failover: FaultyCosmos;
  beforeAll(async () => {
    failover = await startFaultyCosmos({ proxy: { accountOverrides: { enablePerPartitionFailoverBehavior: true } } });
  });
  afterAll(() => failover?.close());

  it('resolves the echo of its own applied attempt as success', async () => {
    const id = `sdk-retry-${randomUUID()}`;
    // One attempt per save from the store: every retry seen below is the SDK's.
    const single = new CosmosEventStore(failover.events, { retries: { maxAttempts: 1 } });
    failover.proxy.addRule({ kind: 'batch', times: 1, action: { type: 'status', status: 503, when: 'after' } });
    await single.save(id, records(1, 3));
    await failover.proxy.settle();
    expect(failover.proxy.records.filter((r) => r.kind === 'batch').map((r) => [r.status, r.upstreamStatus])).toEqual([
      [503, 200],
      [207, 207],
    ]);
    expect((await single.load(id)).records).toEqual(records(1, 3));
  });
});
