/*
 * The aggregates container shared with a Go protosource service, at the store level. The golden documents
 * are written here field by field from protosource's `gen/opaquedata/cosmos/cosmos.go` (id = sk raw, `#`
 * included; body base64 and omitted when empty; no version; a slot's sk alone when its pk is NA), put
 * straight into the container through transactional batches (the SDK refuses `#` in item URLs and in
 * create/upsert bodies), never through our store.
 */
import type { Container } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import { CosmosOpaqueStore, NotFoundError, compressAtOrAbove } from '../../src/index.js';
import { InMemoryOpaqueStore } from '../../src/testing.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';

type Raw = Record<string, unknown>;

let fixture: CosmosFixture;
let aggregates: Container;

beforeAll(async () => {
  fixture = await startCosmosFixture();
  aggregates = fixture.aggregates;
});

afterAll(async () => {
  await fixture?.close();
});

const ownFields = (doc: Raw) => Object.fromEntries(Object.entries(doc).filter(([k]) => !k.startsWith('_')));

/** Writes documents as Go's opaque store upserts them: the id in the body, whatever its characters. */
async function writeAsGo(pk: string, ...docs: Raw[]): Promise<void> {
  const response = await aggregates.items.batch(
    docs.map((resourceBody) => ({ operationType: 'Upsert' as const, resourceBody: resourceBody as { id: string } })),
    pk,
  );
  expect(response.result?.map((r) => r.statusCode)).toEqual(docs.map(() => 201));
}

/** Every document of a partition, read raw. */
async function partition(pk: string): Promise<Raw[]> {
  const { resources } = await aggregates.items
    .query<Raw>({ query: 'SELECT * FROM c WHERE c.pk = @pk', parameters: [{ name: '@pk', value: pk }] }, { partitionKey: pk })
    .fetchAll();
  return resources.map(ownFields).sort((a, b) => (String(a.id) < String(b.id) ? -1 : 1));
}

const b64 = (bytes: number[]) => Buffer.from(bytes).toString('base64');
const pkOf = (id: string) => `example_app_order_v1#order#id#${id}`;

describe('Go documents in the aggregates container', () => {
  let store: CosmosOpaqueStore;
  beforeEach(() => {
    store = new CosmosOpaqueStore(aggregates);
  });

  it("reads Go's AGG document: raw body, slots as written, no version", async () => {
    const pk = pkOf(`o-${randomUUID()}`);
    await writeAsGo(pk, {
      id: 'AGG',
      pk,
      sk: 'AGG',
      body: b64([0x0a, 0x03, 0x6f, 0x2d, 0x31]),
      gsi1pk: 'example_app_order_v1#order#customer_id#c-1',
      gsi1sk: 'example_app_order_v1#order#create_at#1700000000000000',
    });
    const doc = await store.get(pk, 'AGG');
    expect(Buffer.from(doc.body)).toEqual(Buffer.from([0x0a, 0x03, 0x6f, 0x2d, 0x31]));
    expect(doc.version).toBeUndefined();
    expect(doc.gsi?.[1]).toEqual({
      pk: 'example_app_order_v1#order#customer_id#c-1',
      sk: 'example_app_order_v1#order#create_at#1700000000000000',
    });
  });

  it("reads, replaces in place and deletes Go's PROJ# document under its raw id", async () => {
    const pk = pkOf(`o-${randomUUID()}`);
    await writeAsGo(pk, { id: 'PROJ#OrderSummary', pk, sk: 'PROJ#OrderSummary', body: b64([1, 2, 3]), gsi2pk: 'x#s#state#1' });
    expect(Buffer.from((await store.get(pk, 'PROJ#OrderSummary')).body)).toEqual(Buffer.from([1, 2, 3]));

    await store.put({ pk, sk: 'PROJ#OrderSummary', body: Uint8Array.from([4, 5]) });
    // One document for the sort key, still under Go's id, holding what we wrote.
    expect(await partition(pk)).toEqual([{ id: 'PROJ#OrderSummary', pk, sk: 'PROJ#OrderSummary', body: b64([4, 5]) }]);

    await store.delete(pk, 'PROJ#OrderSummary');
    expect(await partition(pk)).toEqual([]);
    await expect(store.get(pk, 'PROJ#OrderSummary')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('putIfNewer on a Go document compares versions there (absent = 0) and writes in place', async () => {
    const pk = pkOf(`o-${randomUUID()}`);
    await writeAsGo(pk, { id: 'PROJ#OrderSummary', pk, sk: 'PROJ#OrderSummary', body: b64([1]) });
    expect(await store.putIfNewer({ pk, sk: 'PROJ#OrderSummary', version: 2, body: Uint8Array.from([2]) })).toBe(true);
    expect(await store.putIfNewer({ pk, sk: 'PROJ#OrderSummary', version: 1, body: Uint8Array.from([1]) })).toBe(false);
    expect(await partition(pk)).toEqual([{ id: 'PROJ#OrderSummary', pk, sk: 'PROJ#OrderSummary', body: b64([2]), version: 2 }]);
  });

  it('a document an earlier version of this package stored under a percent-encoded id is read, then moved to the raw id', async () => {
    const pk = pkOf(`o-${randomUUID()}`);
    await aggregates.items.create({ id: 'PROJ%23OrderSummary', pk, sk: 'PROJ#OrderSummary', body: b64([9]), version: 3 });
    expect((await store.get(pk, 'PROJ#OrderSummary')).version).toBe(3);
    expect(await store.putIfNewer({ pk, sk: 'PROJ#OrderSummary', version: 3, body: Uint8Array.from([1]) })).toBe(false);
    await store.put({ pk, sk: 'PROJ#OrderSummary', version: 4, body: Uint8Array.from([7]) });
    expect(await partition(pk)).toEqual([{ id: 'PROJ#OrderSummary', pk, sk: 'PROJ#OrderSummary', body: b64([7]), version: 4 }]);
  });

  it('a second document Go created beside ours is folded into one by our next write', async () => {
    const pk = pkOf(`o-${randomUUID()}`);
    await aggregates.items.create({ id: '50%25off', pk, sk: '50%off', body: b64([1]) });
    await writeAsGo(pk, { id: '50%off', pk, sk: '50%off', body: b64([2]) });
    // Ours (the raw id now) is preferred.
    expect(Buffer.from((await store.get(pk, '50%off')).body)).toEqual(Buffer.from([2]));
    await store.put({ pk, sk: '50%off', body: Uint8Array.from([3]) });
    expect(await partition(pk)).toEqual([{ id: '50%off', pk, sk: '50%off', body: b64([3]) }]);
  });
});

describe('what we write is what Go writes', () => {
  it('ids raw wherever Cosmos DB can address them, # and ? included', async () => {
    const store = new CosmosOpaqueStore(aggregates);
    const pk = pkOf(`o-${randomUUID()}`);
    for (const sk of ['AGG', 'PROJ#OrderSummary', 'what?', '50%off', 'a/b', 'back\\slash', 'a%23b']) {
      await store.put({ pk, sk, body: Uint8Array.from([1]) });
    }
    const ids = Object.fromEntries((await partition(pk)).map((d) => [d.sk, d.id]));
    expect(ids).toEqual({
      AGG: 'AGG',
      'PROJ#OrderSummary': 'PROJ#OrderSummary',
      'what?': 'what?',
      '50%off': '50%off',
      // Deliberate differences: Cosmos DB cannot address / or \ in an id by URL, so they are encoded, and a
      // literal escape-like sequence is encoded so the mapping stays one-to-one.
      'a/b': 'a%2Fb',
      'back\\slash': 'back%5Cslash',
      'a%23b': 'a%2523b',
    });
    for (const sk of Object.keys(ids)) expect((await store.get(pk, sk)).sk).toBe(sk);
  });

  it('omits an empty body and an absent version', async () => {
    const store = new CosmosOpaqueStore(aggregates);
    const pk = pkOf(`o-${randomUUID()}`);
    await store.put({ pk, sk: 'AGG', body: new Uint8Array(0) });
    expect(await partition(pk)).toEqual([{ id: 'AGG', pk, sk: 'AGG' }]);
    expect((await store.get(pk, 'AGG')).body.byteLength).toBe(0);
  });

  it("writes a slot's sk alone when its pk is NA, as Go does", async () => {
    const store = new CosmosOpaqueStore(aggregates);
    const pk = pkOf(`o-${randomUUID()}`);
    await store.put({ pk, sk: 'AGG', body: Uint8Array.from([1]), gsi: { 1: { pk: 'NA', sk: 'x#order#create_at#5' }, 2: { pk: 'NA', sk: 'NA' } } });
    expect(await partition(pk)).toEqual([{ id: 'AGG', pk, sk: 'AGG', body: b64([1]), gsi1sk: 'x#order#create_at#5' }]);
  });

  it('in memory: the same rules', async () => {
    const store = new InMemoryOpaqueStore();
    await store.put({ pk: 'p', sk: 'PROJ#S', body: new Uint8Array(0), gsi: { 3: { pk: 'NA', sk: 's' } } });
    const doc = await store.get('p', 'PROJ#S');
    expect(doc.body.byteLength).toBe(0);
    expect(doc.gsi).toEqual({ 3: { sk: 's' } });
  });
});

describe('compression threshold', () => {
  it('0 means off, as in protosource', () => {
    const bytes = Buffer.alloc(10_000, 1);
    expect(Buffer.from(compressAtOrAbove(bytes, 0))).toEqual(bytes);
    expect(compressAtOrAbove(bytes, 300)[0]).toBe(0x1f);
  });
});
