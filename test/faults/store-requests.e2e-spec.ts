/*
 * What each store operation sends, counted exactly at the fault proxy on a warm client: `load`, `loadTail`,
 * `loadRange` and each `readStream` page are one query request and nothing else (no query plan), a checked
 * save is one batch, and a refused one adds one read only after the failure. A test fails when an SDK upgrade
 * brings the query-plan request back (see single-partition-query.ts).
 */
import { randomUUID } from 'node:crypto';
import { CosmosEventStore, ExpectedVersionError, type EventRecord } from '../../src/index.js';
import { bytes, startFaultyCosmos, type FaultyCosmos } from '../support/faults.js';
import { rejectionOf } from '../support/rejection.js';

let env: FaultyCosmos;
let store: CosmosEventStore;

beforeAll(async () => {
  env = await startFaultyCosmos();
  store = new CosmosEventStore(env.events);
});
afterEach(() => {
  env.proxy.clearRules();
  env.proxy.clearRecords();
});
afterAll(() => env?.close());

const records = (from: number, to: number): EventRecord[] =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ version: from + i, data: bytes(`e${from + i}`) }));

/** The kinds of the requests `fn` sent, in order, after one warm-up call of the same kind of operation. */
async function kindsOf(fn: () => Promise<unknown>): Promise<string[]> {
  await env.proxy.settle();
  env.proxy.clearRecords();
  await fn();
  await env.proxy.settle();
  return env.proxy.records.map((r) => r.kind);
}

let id: string;
beforeEach(async () => {
  id = `req-${randomUUID()}`;
  await store.save(id, records(1, 5));
  await store.load(id); // warm: the SDK's per-client metadata is not a per-call cost
});

it('load, loadTail and loadRange are one query each, with no query-plan request', async () => {
  expect(await kindsOf(() => store.load(id))).toEqual(['query']);
  expect(await kindsOf(() => store.loadTail(id, 2))).toEqual(['query']);
  expect(await kindsOf(() => store.loadRange(id, { fromVersion: 2, toVersion: 3 }))).toEqual(['query']);
  expect(await kindsOf(() => store.load(`unknown-${randomUUID()}`))).toEqual(['query']);
});

it('readStream is one query per page', async () => {
  const versions: number[] = [];
  const kinds = await kindsOf(async () => {
    for await (const r of store.readStream(id, { pageSize: 2 })) versions.push(r.version);
  });
  expect(versions).toEqual([1, 2, 3, 4, 5]);
  expect(kinds).toEqual(['query', 'query', 'query']);
});

it('a save checked against the expected version is one batch; a mismatch adds one query after it', async () => {
  expect(await kindsOf(() => store.save(id, records(6, 7), { expectedVersion: 5 }))).toEqual(['batch']);
  let err: unknown;
  const kinds = await kindsOf(async () => {
    err = await rejectionOf(store.save(id, records(7, 7), { expectedVersion: 6 }));
  });
  expect(err).toBeInstanceOf(ExpectedVersionError);
  expect(err).toMatchObject({ expected: 6, found: 7 });
  expect(kinds).toEqual(['batch', 'query']);
});

it('a single-partition query still answers after a transient fault, retried as one request per attempt', async () => {
  env.proxy.addRule({ kind: 'query', times: 1, action: { type: 'status', status: 503 } });
  const kinds = await kindsOf(() => store.load(id));
  expect(kinds).toEqual(['query', 'query']);
});

it('truncateBefore is one listing and one batch; deleteStream one listing and one batch with the tombstone', async () => {
  expect(await kindsOf(() => store.truncateBefore(id, 4))).toEqual(['query', 'batch']);
  await env.events.items.create({ id: 'tip', a: id, state: 'x' });
  expect(await kindsOf(() => store.deleteStream(id))).toEqual(['query', 'batch']);
  const left = await env.directEvents.items
    .query<{ id: string }>({ query: 'SELECT c.id FROM c WHERE c.a = @a', parameters: [{ name: '@a', value: id }] })
    .fetchAll();
  // The tombstone (version 6) and a stub under each erased version, so they all stay taken; the tip is gone.
  expect(left.resources.map((d) => d.id).sort()).toEqual(['1', '2', '3', '4', '5', '6']);
});

describe('under a lost acknowledgement', () => {
  const left = async (aggregateId: string) =>
    (
      await env.directEvents.items
        .query<{ id: string }>({ query: 'SELECT c.id FROM c WHERE c.a = @a', parameters: [{ name: '@a', value: aggregateId }] })
        .fetchAll()
    ).resources
      .map((d) => d.id)
      .sort();

  it('a checked save whose first attempt landed succeeds once, and is not reported a mismatch', async () => {
    env.proxy.addRule({ kind: 'batch', times: 1, action: { type: 'reset', when: 'after' } });
    await store.save(id, records(6, 7), { expectedVersion: 5 });
    expect((await store.load(id)).records.map((r) => r.version)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('deleteStream whose tombstone batch landed unheard finishes the erasure under the same tombstone', async () => {
    env.proxy.addRule({ kind: 'batch', times: 1, action: { type: 'reset', when: 'after' } });
    await store.deleteStream(id);
    expect(await left(id)).toEqual(['1', '2', '3', '4', '5', '6']);
    expect((await store.load(id)).records.map((r) => [r.version, r.type])).toEqual([[6, '$stream-deleted']]);
  });

  it('truncateBefore whose delete batch landed unheard lists again and ends where it should', async () => {
    env.proxy.addRule({ kind: 'batch', times: 1, action: { type: 'reset', when: 'after' } });
    await store.truncateBefore(id, 4);
    expect(await left(id)).toEqual(['1', '2', '3', '4', '5']);
    expect((await store.load(id)).records.map((r) => r.version)).toEqual([4, 5]);
  });
});

it('an erasure with an expiring tombstone leaves stubs that expire with it, so nothing of the stream stays', async () => {
  await store.truncateBefore(id, 3);
  await store.deleteStream(id, { tombstoneTtlSeconds: 3600 });
  const { resources } = await env.directEvents.items
    .query<{ id: string; t?: number; ttl?: number; v?: number; d?: string; r?: number }>({
      query: 'SELECT * FROM c WHERE c.a = @a',
      parameters: [{ name: '@a', value: id }],
    })
    .fetchAll();
  const byId = new Map(resources.map((d) => [d.id, d]));
  expect([...byId.keys()].sort()).toEqual(['1', '2', '3', '4', '5', '6']);
  // Every stub, the truncation's ones too: no `v`, no `d`, the tombstone's version and expiry.
  for (const stubId of ['1', '2', '3', '4', '5']) {
    const stub = byId.get(stubId)!;
    expect(stub).toMatchObject({ r: 6, t: byId.get('6')!.t });
    expect(stub.v).toBeUndefined();
    expect(stub.d).toBeUndefined();
    expect(stub.ttl).toBeGreaterThan(3500);
  }
});

it('truncateBefore leaves a stub under every removed version, in one batch as the deletes were', async () => {
  expect(await kindsOf(() => store.truncateBefore(id, 4))).toEqual(['query', 'batch']);
  const { resources } = await env.directEvents.items
    .query<{ id: string; v?: number; d?: string; r?: number; t?: number }>({
      query: 'SELECT * FROM c WHERE c.a = @a AND NOT IS_DEFINED(c.v)',
      parameters: [{ name: '@a', value: id }],
    })
    .fetchAll();
  expect(resources.map((d) => [d.id, d.r, d.d, d.t]).sort()).toEqual([
    ['1', 4, undefined, undefined],
    ['2', 4, undefined, undefined],
    ['3', 4, undefined, undefined],
  ]);
});
