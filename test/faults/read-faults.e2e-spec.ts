/*
 * load() and loadTail() under faults: a read changes nothing, so each transient failure is retried until
 * the query answers, and the records come back exactly as stored.
 */
import { randomUUID } from 'node:crypto';
import { CosmosEventStore, EventStoreError, isConflict, type EventRecord } from '../../src/index.js';
import { type FaultAction } from '../../src/testing.js';
import { bytes, startFaultyCosmos, type FaultyCosmos } from '../support/faults.js';

let env: FaultyCosmos;
let store: CosmosEventStore;
const retries = { initialDelayMs: 5, maxDelayMs: 20 };
const id = `reads-${randomUUID()}`;
const history: EventRecord[] = Array.from({ length: 30 }, (_, i) => ({ version: i + 1, data: bytes(`event-${i + 1}`) }));

beforeAll(async () => {
  env = await startFaultyCosmos();
  store = new CosmosEventStore(env.events, { retries });
  await new CosmosEventStore(env.directEvents).save(id, history);
});
afterEach(() => {
  env.proxy.clearRules();
  env.proxy.clearRecords();
});
afterAll(() => env?.close());

/** What each query request got from the proxy, in order (query plans aside). */
async function queries(): Promise<Array<number | string>> {
  await env.proxy.settle();
  return env.proxy.records.filter((r) => r.kind === 'query').map((r) => r.status);
}

describe('reads under faults', () => {
  it.each<[string, FaultAction, Array<number | string>]>([
    ['added latency', { type: 'latency', ms: 50 }, [200]],
    // The SDK retries these itself, the 429 after the wait asked for and the reset after its own 1 s pause.
    ['a 429', { type: 'status', status: 429, retryAfterMs: 10 }, [429, 429, 200]],
    // (one reset only: the SDK's pause before retrying a read after a network error is a fixed 1 s)
    ['a connection reset', { type: 'reset', when: 'before' }, ['reset', 200]],
    // The SDK retries a 503 once only, and a 408 not at all: the rest are the store's retries.
    ['503s', { type: 'status', status: 503 }, [503, 503, 200]],
    ['408s', { type: 'status', status: 408 }, [408, 408, 200]],
    ['a reset after the server answered', { type: 'reset', when: 'after' }, ['reset', 200]],
  ])('load and loadTail retry through %s and return the records exactly', async (_label, action, expected) => {
    const times = expected.length - 1;
    env.proxy.addRule({ kind: 'query', times, action });
    expect((await store.load(id)).records).toEqual(history);
    expect(await queries()).toEqual(expected);

    env.proxy.clearRecords();
    env.proxy.addRule({ kind: 'query', times, action });
    expect((await store.loadTail(id, 5)).records).toEqual(history.slice(-5));
    expect(await queries()).toEqual(expected);
  });

  it('gives up after its attempts with an EventStoreError that is not a conflict', async () => {
    const single = new CosmosEventStore(env.events, { retries: { ...retries, maxAttempts: 3 } });
    env.proxy.addRule({ kind: 'query', action: { type: 'status', status: 408 } });
    const err = await single.load(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EventStoreError);
    expect(isConflict(err)).toBe(false);
    expect(await queries()).toEqual([408, 408, 408]);
  });

  it('does not retry a failure that is not transient', async () => {
    env.proxy.addRule({ kind: 'query', action: { type: 'status', status: 400 } });
    expect(await store.load(id).catch((e: unknown) => e)).toBeInstanceOf(EventStoreError);
    expect(await queries()).toEqual([400]);
  });

  it.each<[string, FaultAction, Array<number | string>]>([
    ['408s', { type: 'status', status: 408 }, [408, 408, 200]],
    ['503s', { type: 'status', status: 503 }, [503, 503, 200]],
  ])('readStream retries a page through %s, resuming after the last record read', async (_label, action, expected) => {
    const stream = store.readStream(id, { pageSize: 10 })[Symbol.asyncIterator]();
    const read: EventRecord[] = [];
    for (let i = 0; i < 10; i++) read.push((await stream.next()).value as EventRecord);
    expect(await queries()).toEqual([200]);

    env.proxy.clearRecords();
    env.proxy.addRule({ kind: 'query', times: expected.length - 1, action });
    for (let r = await stream.next(); !r.done; r = await stream.next()) read.push(r.value);
    expect(read).toEqual(history);
    // The failed second page, its retries, then the third page: no page read twice.
    expect(await queries()).toEqual([...expected, 200]);
  });

  it('readStream gives up after its attempts with an EventStoreError', async () => {
    const single = new CosmosEventStore(env.events, { retries: { ...retries, maxAttempts: 3 } });
    env.proxy.addRule({ kind: 'query', action: { type: 'status', status: 408 } });
    const err = await (async () => {
      for await (const record of single.readStream(id)) void record;
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EventStoreError);
    expect(await queries()).toEqual([408, 408, 408]);
  });
});
