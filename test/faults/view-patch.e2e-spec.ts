/*
 * `putIfNewerTracked` with nothing known about the stored document (a process that has not written it yet):
 * one patch conditional on the stored version being older, instead of a read and then a write. Each test
 * checks the requests sent (at the fault proxy) and the document really stored, field by field, read raw
 * past the proxy: after the patch it must be exactly the document a replace would have written.
 */
import type { Container } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import { CosmosOpaqueStore, type OpaqueData } from '../../src/index.js';
import { toAggregateDocument } from '../../src/modules/event-store/aggregate-documents.js';
import type { FaultAction } from '../../src/testing.js';
import { bytes, startFaultyCosmos, type FaultyCosmos } from '../support/faults.js';

let env: FaultyCosmos;
let raw: Container;
let opaque: CosmosOpaqueStore;

beforeAll(async () => {
  env = await startFaultyCosmos();
  raw = env.directEvents.database.container('aggregates');
  opaque = new CosmosOpaqueStore(env.client.database(env.events.database.id).container('aggregates'), {
    retries: { initialDelayMs: 5, maxDelayMs: 20 },
  });
  // The client's first calls on a container fetch its metadata: made before any test counts requests.
  const warm = `warm-${randomUUID()}`;
  await opaque.put(doc(warm, 1));
  await opaque.putIfNewerTracked(doc(warm, 2), undefined);
  await env.proxy.settle();
});
afterEach(() => {
  env.proxy.clearRules();
  env.proxy.clearRecords();
});
afterAll(() => env?.close());

function doc(pk: string, version: number, extra: Partial<OpaqueData> = {}): OpaqueData {
  return { pk, sk: 'AGG', version, body: bytes(`v${version}`), gsi: { 1: { pk: `g-${pk}`, sk: 'AGG' } }, ...extra };
}

/** The stored document's own fields (not the service's `_` ones), or undefined. */
async function stored(pk: string): Promise<Record<string, unknown> | undefined> {
  const { resource } = await raw.item('AGG', pk).read<Record<string, unknown>>();
  return resource && Object.fromEntries(Object.entries(resource).filter(([name]) => !name.startsWith('_')));
}

/** Writes a document as it is, past the store and the proxy. */
async function storeRaw(body: Record<string, unknown>): Promise<void> {
  await raw.items.upsert({ id: 'AGG', sk: 'AGG', ...body });
}

/** Method and status of each request sent to the aggregates container since the last clear. */
async function sent(): Promise<string[]> {
  await env.proxy.settle();
  return env.proxy.records.filter((r) => r.path.includes('/colls/aggregates/')).map((r) => `${r.method} ${r.status}`);
}

/** What a replace of the document would store now (a `ttl` counts down from now). */
const expected = (data: OpaqueData) => ({ ...toAggregateDocument(data, Math.floor(Date.now() / 1000)) });

it('writes over an older version with one conditional patch, leaving exactly the document a replace leaves', async () => {
  const pk = `older-${randomUUID()}`;
  await opaque.put(doc(pk, 1, { gsi: { 1: { pk: 'g', sk: 'old' }, 2: { pk: 'h' } } }));
  env.proxy.clearRecords();
  const ours = doc(pk, 2, { gsi: { 1: { pk: 'g', sk: 'new' }, 2: { pk: 'h' } } });
  const { written, etag } = await opaque.putIfNewerTracked(ours, undefined);
  expect(written).toBe(true);
  expect(await sent()).toEqual(['PATCH 200']);
  expect(await stored(pk)).toEqual(expected(ours));
  // The etag answered is the stored document's: the next write replaces under it.
  const { resource } = await raw.item('AGG', pk).read<{ _etag: string }>();
  expect(etag).toBe(resource?._etag);
});

it('never writes over a newer version: the patch is refused, the read finds it, nothing is written', async () => {
  const pk = `newer-${randomUUID()}`;
  await opaque.put(doc(pk, 5));
  env.proxy.clearRecords();
  expect(await opaque.putIfNewerTracked(doc(pk, 3), undefined)).toEqual({ written: false });
  expect(await sent()).toEqual(['PATCH 412', 'GET 200']);
  expect(await stored(pk)).toEqual(expected(doc(pk, 5)));
});

it("never writes over a newer version when another aggregate's document of the same id is older", async () => {
  // Ids repeat across partitions (every aggregate's view is `AGG`): the condition is the addressed one's.
  const pk = `newer-here-${randomUUID()}`;
  const elsewhere = `older-there-${randomUUID()}`;
  await opaque.put(doc(pk, 5));
  await opaque.put(doc(elsewhere, 1));
  env.proxy.clearRecords();
  expect(await opaque.putIfNewerTracked(doc(pk, 3), undefined)).toEqual({ written: false });
  expect(await sent()).toEqual(['PATCH 412', 'GET 200']);
  expect(await stored(pk)).toEqual(expected(doc(pk, 5)));
  expect(await stored(elsewhere)).toEqual(expected(doc(elsewhere, 1)));
});

it('never writes over the same version stored by another writer', async () => {
  const pk = `same-${randomUUID()}`;
  await opaque.put(doc(pk, 3, { body: bytes('theirs') }));
  env.proxy.clearRecords();
  expect(await opaque.putIfNewerTracked(doc(pk, 3), undefined)).toEqual({ written: false });
  expect(await sent()).toEqual(['PATCH 412', 'GET 200']);
  expect(await stored(pk)).toMatchObject({ version: 3, body: Buffer.from('theirs').toString('base64') });
});

it('overwrites an expired newer version: the patch is refused, the read finds it expired, a replace writes', async () => {
  const pk = `expired-${randomUUID()}`;
  const past = Math.floor(Date.now() / 1000) - 60;
  // No ttl: Cosmos DB would delete it, and the point is a document still there past its t.
  await storeRaw({ pk, version: 9, t: past, body: 'AA==' });
  env.proxy.clearRecords();
  const ours = doc(pk, 2);
  expect((await opaque.putIfNewerTracked(ours, undefined)).written).toBe(true);
  expect(await sent()).toEqual(['PATCH 412', 'GET 200', 'PUT 200']);
  expect(await stored(pk)).toEqual(expected(ours));
});

it('replaces whole an older document holding fields ours lacks (a slot, an expiry): none of them is left', async () => {
  const pk = `extra-${randomUUID()}`;
  const later = Math.floor(Date.now() / 1000) + 3600;
  await opaque.put(doc(pk, 1, { t: later, gsi: { 1: { pk: 'g', sk: 's' }, 2: { pk: 'h', sk: 'x' }, 3: { sk: 'only' } } }));
  expect(await stored(pk)).toMatchObject({ gsi2pk: 'h', gsi2sk: 'x', gsi3sk: 'only', t: later });
  env.proxy.clearRecords();
  const ours = doc(pk, 2, { body: new Uint8Array(0) });
  expect((await opaque.putIfNewerTracked(ours, undefined)).written).toBe(true);
  expect(await sent()).toEqual(['PATCH 412', 'GET 200', 'PUT 200']);
  const after = await stored(pk);
  expect(after).toEqual(expected(ours));
  expect(after).not.toHaveProperty('body');
  expect(after).not.toHaveProperty('gsi2pk');
  expect(after).not.toHaveProperty('ttl');
});

it('patches a document with an expiry, and one without a version, to exactly ours', async () => {
  const pk = `ttl-${randomUUID()}`;
  await storeRaw({ pk, body: 'AA==', gsi1pk: 'g', gsi1sk: 'AGG' });
  env.proxy.clearRecords();
  const t = Math.floor(Date.now() / 1000) + 3600;
  const ours = doc(pk, 1, { t, gsi: { 1: { pk: 'g' }, 2: { sk: 'b' } } });
  expect((await opaque.putIfNewerTracked(ours, undefined)).written).toBe(true);
  expect(await sent()).toEqual(['PATCH 200']);
  const after = await stored(pk);
  // ttl counts down from the write: compared within the second or two the test may take.
  expect(after).toEqual({ ...expected(ours), ttl: expect.any(Number) });
  expect(Math.abs((after?.ttl as number) - (t - Math.floor(Date.now() / 1000)))).toBeLessThanOrEqual(2);
});

it('creates a missing document after the patch finds none (404)', async () => {
  const pk = `missing-${randomUUID()}`;
  const ours = doc(pk, 1);
  expect((await opaque.putIfNewerTracked(ours, undefined)).written).toBe(true);
  expect(await sent()).toEqual(['PATCH 404', 'GET 404', 'POST 201']);
  expect(await stored(pk)).toEqual(expected(ours));
});

it('reads then writes a document that would take more than 10 patch operations', async () => {
  const pk = `wide-${randomUUID()}`;
  await opaque.put(doc(pk, 1));
  env.proxy.clearRecords();
  // body, version and five slots of two fields each: 12 operations.
  const gsi = Object.fromEntries([1, 2, 3, 4, 5].map((n) => [n, { pk: `p${n}`, sk: `s${n}` }]));
  const ours = doc(pk, 2, { gsi });
  expect((await opaque.putIfNewerTracked(ours, undefined)).written).toBe(true);
  expect(await sent()).toEqual(['GET 200', 'PUT 200']);
  expect(await stored(pk)).toEqual(expected(ours));
});

describe('under faults', () => {
  it('resolves the lost answer of its patch as success: the read finds the document exactly as sent', async () => {
    const pk = `lost-${randomUUID()}`;
    await opaque.put(doc(pk, 1));
    env.proxy.clearRecords();
    env.proxy.addRule({ kind: 'write', times: 1, action: { type: 'reset', when: 'after' } });
    const ours = doc(pk, 2);
    const { written, etag } = await opaque.putIfNewerTracked(ours, undefined);
    expect(written).toBe(true);
    // No second write: the patch landed (200 upstream), and the read shows it.
    expect(await sent()).toEqual(['PATCH reset', 'GET 200']);
    expect(env.proxy.records.find((r) => r.method === 'PATCH')?.upstreamStatus).toBe(200);
    const { resource } = await raw.item('AGG', pk).read<{ _etag: string }>();
    expect(etag).toBe(resource?._etag);
    expect(await stored(pk)).toEqual(expected(ours));
  });

  it.each<[string, FaultAction, string]>([
    ['a 503', { type: 'status', status: 503 }, 'PATCH 503'],
    ['a connection reset before the server', { type: 'reset', when: 'before' }, 'PATCH reset'],
  ])('after %s on its patch, reads and then writes', async (_label, action, refused) => {
    const pk = `refused-${randomUUID()}`;
    await opaque.put(doc(pk, 1));
    env.proxy.clearRecords();
    env.proxy.addRule({ kind: 'write', times: 1, action });
    const ours = doc(pk, 2);
    expect((await opaque.putIfNewerTracked(ours, undefined)).written).toBe(true);
    expect(await sent()).toEqual([refused, 'GET 200', 'PUT 200']);
    expect(await stored(pk)).toEqual(expected(ours));
  });
});
