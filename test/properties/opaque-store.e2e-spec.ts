/*
 * Properties of the opaque store (the aggregates container) over its public API, on InMemoryOpaqueStore and on
 * CosmosOpaqueStore against the embedded server, fed the same generated calls: keys with the characters
 * Cosmos DB forbids in ids, slot numbers and slot keys of every kind, sort conditions, page sizes, bodies
 * up to and past the item limit. Every input round-trips (put → get/query → delete) or is refused with a
 * ValidationError before any request, and both stores agree which.
 */
import fc from 'fast-check';
import {
  decodeAggregateBody,
  SORT_OPERATORS,
  type GsiSlots,
  type OpaqueData,
  type OpaqueQuery,
  type OpaqueQueryResult,
  type OpaqueStore,
  type SortCondition,
} from '../../src/index.js';
import {
  anyNumber,
  bytes,
  expectAgreement,
  expiry,
  hostileText,
  keyText,
  nowSeconds,
  onBoth,
  PropertyFixture,
  runs,
  textOfBytes,
  type Outcome,
} from './support.js';

let fixture: PropertyFixture;
beforeAll(async () => {
  fixture = await PropertyFixture.start();
});
afterAll(() => fixture?.close());

// --- arbitraries ------------------------------------------------------------------------------------

/** Sort keys: short hostile text, and long ones either side of the 1,023-byte id once `/ \ ? # %` are encoded. */
const sortKeyText: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: hostileText() },
  { weight: 2, arbitrary: textOfBytes(fc.integer({ min: 330, max: 1030 })) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', '\t', '\u3000', 'NA', 'a ', ' a', '.', '..', '...', './', '%2e') },
);

/** A slot's keys as a caller might give them: small alphabet (so "NA" and "" come up), some hostile, some not strings. */
const slotKey: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(undefined, '', 'NA', 'x', 'y') },
  { weight: 2, arbitrary: hostileText(6) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(5, null, {}) as fc.Arbitrary<string> },
);

const slotNumberKey: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 20 }).map(String) },
  { weight: 1, arbitrary: fc.constantFrom('0', '21', '-1', '1.5', '01', ' 2', '2 ', '1e1', 'NaN', 'gsi1', '') },
);

const slots: fc.Arbitrary<GsiSlots> = fc.dictionary(
  slotNumberKey,
  fc.oneof(
    { weight: 8, arbitrary: fc.record({ pk: slotKey, sk: slotKey }, { requiredKeys: [] }) },
    { weight: 1, arbitrary: fc.constantFrom<unknown>(undefined, null, 'slot', 3) },
  ),
  { maxKeys: 4 },
) as fc.Arbitrary<GsiSlots>;

const opaqueDoc: fc.Arbitrary<OpaqueData> = fc.oneof(
  {
    weight: 14,
    arbitrary: fc
      .record(
        { pk: keyText, sk: sortKeyText, body: bytes(), version: anyNumber(0, 40), t: expiry(), gsi: slots },
        { requiredKeys: ['pk', 'sk', 'body'] },
      )
      .map((d) => Object.fromEntries(Object.entries(d).filter(([, v]) => v !== undefined)) as unknown as OpaqueData),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom<unknown>(
      null,
      'doc',
      { pk: 'p', sk: 's' },
      { pk: 'p', sk: 's', body: 'text' },
      { pk: 'p', sk: 's', body: [1] },
      { pk: 1, sk: 's', body: new Uint8Array(1) },
      { pk: 'p', sk: 1, body: new Uint8Array(1) },
      { pk: 'p', sk: 's', body: new Uint8Array(1), gsi: 'slots' },
      { pk: 'p', sk: 's', body: new Uint8Array(1), version: '2' },
    ) as fc.Arbitrary<OpaqueData>,
  },
);

// --- helpers ----------------------------------------------------------------------------------------

const hex = (data: Uint8Array) => Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex');

/** A document as comparable plain data. */
function plain(doc: OpaqueData): Record<string, unknown> {
  return { ...doc, body: hex(doc.body) };
}

/** What `get` must answer for a document `put` accepted: SPEC §4's slot rule applied, zero fields left out. */
function expectedStored(doc: OpaqueData): Record<string, unknown> {
  const out: Record<string, unknown> = { pk: doc.pk, sk: doc.sk, body: hex(doc.body) };
  if (doc.version) out.version = doc.version;
  if (doc.t) out.t = doc.t;
  const gsi: Record<number, { pk?: string; sk?: string }> = {};
  for (const [n, slot] of Object.entries(doc.gsi ?? {})) {
    if (!slot) continue;
    const { pk = '', sk = '' } = slot;
    if (pk !== '' && pk !== 'NA') gsi[Number(n)] = { pk, sk: sk === '' ? 'NA' : sk };
    // A slot whose pk is empty or "NA" keeps its sk alone, as protosource's Go store writes it.
    else if (sk !== '' && sk !== 'NA') gsi[Number(n)] = { sk };
  }
  if (Object.keys(gsi).length > 0) out.gsi = gsi;
  return out;
}

function okValue<T>(outcome: Outcome<T>): T {
  if (outcome.kind !== 'ok') throw new Error(`expected the call to succeed, got ${JSON.stringify(outcome)}`);
  return outcome.value;
}

/** Every page of a query, following continuation tokens; each page within the limit. */
async function allPages(store: OpaqueStore, query: OpaqueQuery): Promise<OpaqueData[]> {
  const items: OpaqueData[] = [];
  let continuationToken: string | undefined;
  for (let page = 0; ; page++) {
    if (page > 100) throw new Error('pagination does not end');
    const result: OpaqueQueryResult = await store.query({ ...query, continuationToken });
    if (query.limit !== undefined) expect(result.items.length).toBeLessThanOrEqual(query.limit);
    items.push(...result.items);
    continuationToken = result.continuationToken;
    if (continuationToken === undefined) return items;
  }
}

// --- properties -------------------------------------------------------------------------------------

describe('put, get, query, delete', () => {
  it('a document put is got back exactly (slot rule applied), found by its keys and slots, and gone once deleted', async () => {
    await fc.assert(
      fc.asyncProperty(opaqueDoc, async (doc) => {
        const stores = await fixture.opaqueStores();
        const put = await onBoth(fixture, stores, (s) => s.put(doc));
        expectAgreement(put);
        if (put.memory.kind !== 'ok') return;

        const expired = doc.t !== undefined && doc.t > 0 && doc.t <= nowSeconds();
        const got = await onBoth(fixture, stores, (s) => s.get(doc.pk, doc.sk));
        expectAgreement(got);
        if (expired) {
          expect(got.memory.kind).toBe('not-found');
        } else {
          expect(plain(okValue(got.memory))).toEqual(expectedStored(doc));
          expect(plain(okValue(got.cosmos))).toEqual(expectedStored(doc));
        }

        // Found by its main key, and by each of its slots that has a partition key.
        const live = expired ? [] : [expectedStored(doc)];
        const byKey = await onBoth(fixture, stores, (s) => s.query({ pk: doc.pk, sk: { op: '=', value: doc.sk } }));
        expectAgreement(byKey);
        expect(okValue(byKey.memory).items.map(plain)).toEqual(live);
        expect(okValue(byKey.cosmos).items.map(plain)).toEqual(live);
        const stored = expectedStored(doc).gsi as Record<number, { pk?: string; sk: string }> | undefined;
        for (const [n, slot] of Object.entries(stored ?? {})) {
          if (slot.pk === undefined) continue;
          const query = { index: Number(n), pk: slot.pk, sk: { op: '=' as const, value: slot.sk } };
          const bySlot = await onBoth(fixture, stores, (s) => s.query(query));
          expectAgreement(bySlot);
          expect(okValue(bySlot.memory).items.map(plain)).toEqual(live);
          expect(okValue(bySlot.cosmos).items.map(plain)).toEqual(live);
        }

        for (let i = 0; i < 2; i++) {
          // The second delete finds nothing and succeeds all the same.
          const deleted = await onBoth(fixture, stores, (s) => s.delete(doc.pk, doc.sk));
          expectAgreement(deleted);
          expect(deleted.memory.kind).toBe('ok');
        }
        const gone = await onBoth(fixture, stores, (s) => s.get(doc.pk, doc.sk));
        expect(gone.memory.kind).toBe('not-found');
        expect(gone.cosmos.kind).toBe('not-found');
      }),
      { numRuns: runs(150) },
    );
  });

  it('get and delete refuse, alike and before any request, the keys put refuses', async () => {
    await fc.assert(
      fc.asyncProperty(keyText, sortKeyText, async (pk, sk) => {
        const stores = await fixture.opaqueStores();
        const put = await onBoth(fixture, stores, (s) => s.put({ pk, sk, body: new Uint8Array(0) }));
        expectAgreement(put);
        const calls: Array<(s: OpaqueStore) => Promise<unknown>> = [(s) => s.get(pk, sk), (s) => s.delete(pk, sk)];
        for (const call of calls) {
          const both = await onBoth(fixture, stores, call);
          expectAgreement(both);
          if (put.memory.kind === 'invalid') expect(both.memory).toEqual(put.memory);
          else expect(both.memory.kind).not.toBe('invalid');
        }
      }),
      { numRuns: runs(100) },
    );
  });

  it('a body is stored byte for byte or refused before any request, either side of the 2 MB item limit', async () => {
    // Base64 makes 4 characters of 3 bytes: about 1,572,000 bytes of body fill a 2 MB document.
    const size = fc.oneof(
      { weight: 3, arbitrary: fc.integer({ min: 1_571_800, max: 1_572_200 }) },
      { weight: 1, arbitrary: fc.integer({ min: 1_000_000, max: 2_200_000 }) },
    );
    await fc.assert(
      fc.asyncProperty(size, slots, async (length, gsi) => {
        const stores = await fixture.opaqueStores();
        const doc: OpaqueData = { pk: 'big', sk: 'body', body: new Uint8Array(length).fill(7), gsi };
        const put = await onBoth(fixture, stores, (s) => s.put(doc));
        expectAgreement(put);
        const got = await onBoth(fixture, stores, (s) => s.get('big', 'body'));
        if (put.memory.kind === 'ok') {
          expect(hex(okValue(got.cosmos).body)).toBe(hex(doc.body));
        } else {
          expect(got.cosmos.kind).toBe('not-found');
        }
      }),
      { numRuns: runs(6) },
    );
  });
});

describe('saveAggregate', () => {
  it('stores the aggregate’s JSON under its keys, or refuses it before any request; both stores alike', async () => {
    const aggregate = fc.record({
      pk: keyText,
      sk: sortKeyText,
      gsi: fc.option(slots, { nil: undefined }),
      version: fc.option(anyNumber(0, 9), { nil: undefined }),
      ttlSeconds: fc.option(fc.oneof(anyNumber(0, 10 ** 6), fc.constantFrom(2 ** 31 - 1, 2 ** 31)), { nil: undefined }),
      state: fc.jsonValue(),
    });
    await fc.assert(
      fc.asyncProperty(aggregate, async ({ pk, sk, gsi, version, ttlSeconds, state }) => {
        const stores = await fixture.aggregateStores();
        const materializable = {
          version,
          ttlSeconds,
          keys: () => ({ pk, sk, ...(gsi && { gsi }) }),
          toJSON: () => state,
        };
        const saved = await onBoth(fixture, stores, (s) => s.store.saveAggregate(materializable));
        expectAgreement(saved);
        if (saved.memory.kind !== 'ok') return;
        const got = await onBoth(fixture, stores, (s) => s.opaque.get(pk, sk));
        expectAgreement(got);
        const expected = JSON.parse(JSON.stringify(state) ?? 'null') as unknown;
        for (const doc of [okValue(got.memory), okValue(got.cosmos)]) {
          expect(decodeAggregateBody(doc.body)).toEqual(expected);
          expect(doc.version ?? 0).toBe(version || 0);
          if (ttlSeconds) expect(Math.abs((doc.t ?? 0) - (nowSeconds() + ttlSeconds))).toBeLessThanOrEqual(2);
          else expect(doc.t).toBeUndefined();
          expect(doc.gsi).toEqual(expectedStored({ pk, sk, body: new Uint8Array(0), gsi }).gsi);
        }
      }),
      { numRuns: runs(60) },
    );
  });
});

describe('query', () => {
  /** A small alphabet of hostile characters, so sort keys collide, prefix each other and sort across planes. */
  const sortChar = fc.constantFrom('a', 'b', 'A', '.', '/', '%', '#', ' ', 'é', '中', '\ue000', '\uffff', '😀', '\u{10ffff}');
  const sortText = fc.array(sortChar, { maxLength: 3 }).map((c) => c.join(''));
  const conditionValue = fc.oneof(
    { weight: 8, arbitrary: sortText },
    { weight: 1, arbitrary: fc.constantFrom<unknown>('\ud800', 'a\udfff', 3, null, undefined) as fc.Arbitrary<string> },
  );
  const condition: fc.Arbitrary<SortCondition | undefined> = fc.oneof(
    { weight: 2, arbitrary: fc.constant(undefined) },
    {
      weight: 8,
      arbitrary: fc
        .record(
          { op: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...SORT_OPERATORS) }, fc.constantFrom('==', 'like', '')), value: conditionValue, value2: conditionValue },
          { requiredKeys: ['op', 'value'] },
        )
        .map((c) => c as SortCondition),
    },
    { weight: 1, arbitrary: fc.constantFrom<unknown>(null, 'a', { value: 'a' }) as fc.Arbitrary<SortCondition> },
  );
  const limit = fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 3, arbitrary: fc.integer({ min: 1, max: 5 }) }, {
    weight: 1,
    arbitrary: anyNumber(-1, 3),
  });

  it('returns what matches, ascending by the sort key, page by page without loss or repeat; both stores alike', async () => {
    const seed = fc.array(
      fc.record({ sk: sortText.filter((s) => /\S/.test(s) && s !== '.' && s !== '..'), gsiSk: fc.option(sortText, { nil: undefined }), expired: fc.boolean() }),
      { maxLength: 10 },
    );
    await fc.assert(
      fc.asyncProperty(
        seed,
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.record({ slot: fc.boolean(), index: fc.option(anyNumber(-1, 21), { nil: undefined }), sk: condition, limit }), {
          minLength: 1,
          maxLength: 4,
        }),
        async (docs, slot, queries) => {
          const stores = await fixture.opaqueStores();
          const pk = 'tenant/1';
          const gsiPk = 'index#1';
          const past = nowSeconds() - 1000;
          for (const [i, d] of docs.entries()) {
            // Main-key documents share one partition; slot documents each sit in a partition of their own.
            const gsi = d.gsiSk === undefined ? undefined : { [slot]: { pk: gsiPk, sk: d.gsiSk } };
            for (const doc of [
              { pk, sk: d.sk, body: Uint8Array.of(i), ...(d.expired && { t: past }) },
              { pk: `p${i}`, sk: 'state', body: Uint8Array.of(i), ...(gsi && { gsi }), ...(d.expired && { t: past }) },
            ]) {
              expectAgreement(await onBoth(fixture, stores, (s) => s.put(doc)));
            }
          }
          for (const q of queries) {
            const query: OpaqueQuery = {
              pk: q.slot ? gsiPk : pk,
              ...(q.index !== undefined ? { index: q.index } : q.slot ? { index: slot } : {}),
              ...(q.sk !== undefined && { sk: q.sk }),
              ...(q.limit !== undefined && { limit: q.limit }),
            };
            const both = await onBoth(fixture, stores, (s) => allPages(s, query));
            expectAgreement(both);
            if (both.memory.kind !== 'ok') continue;
            const memory = okValue(both.memory);
            const cosmos = okValue(both.cosmos);
            const index = query.index ?? 0;
            const sortKeyOf = (d: OpaqueData) => (index === 0 ? d.sk : (d.gsi?.[index]?.sk ?? ''));
            // Ties on a slot's sort key may come in any order: compare the sort keys in order, the documents as sets.
            expect(cosmos.map(sortKeyOf)).toEqual(memory.map(sortKeyOf));
            expect(cosmos.map((d) => `${d.pk}|${d.sk}`).sort()).toEqual(memory.map((d) => `${d.pk}|${d.sk}`).sort());
            // And the model: live documents of that key whose sort key matches, ascending.
            // A later put at the same main key replaces the earlier one.
            const lastAtKey = new Map(docs.map((d) => [d.sk, d]));
            const expected = docs
              .flatMap((d) => {
                if (d.expired) return [];
                if (index === 0) return query.pk === pk && lastAtKey.get(d.sk) === d ? [d.sk] : [];
                if (index !== slot || query.pk !== gsiPk || d.gsiSk === undefined) return [];
                return [d.gsiSk === '' ? 'NA' : d.gsiSk];
              })
              .filter((s) => matches(s, query.sk))
              .sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
            expect(memory.map(sortKeyOf)).toEqual(expected);
          }
        },
      ),
      { numRuns: runs(80) },
    );
  });
});

/** The sort-key condition as SPEC §4 states it, on JavaScript strings. */
function matches(value: string, cond: SortCondition | undefined): boolean {
  if (!cond) return true;
  switch (cond.op) {
    case '=':
      return value === cond.value;
    case '<':
      return value < cond.value;
    case '<=':
      return value <= cond.value;
    case '>':
      return value > cond.value;
    case '>=':
      return value >= cond.value;
    case 'between':
      return value >= cond.value && value <= (cond.value2 as string);
    case 'begins_with':
      return value.startsWith(cond.value);
  }
}
