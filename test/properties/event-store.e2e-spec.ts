/*
 * Properties of the event store over its public API, on InMemoryEventStore and on CosmosEventStore against
 * the embedded server, fed the same generated calls: every input either round-trips exactly or is refused
 * with a ValidationError before any request, both stores agree which, and nothing is ever half-written.
 */
import fc from 'fast-check';
import type { EventRecord, History } from '../../src/index.js';
import {
  anyNumber,
  bytes,
  expectAgreement,
  expiry,
  keyText,
  nowSeconds,
  onBoth,
  PropertyFixture,
  runs,
  sameBytes,
  type Outcome,
  type Pair,
} from './support.js';
import { CosmosEventStore, ValidationError } from '../../src/index.js';
import { InMemoryEventStore } from '../../src/testing.js';

type EventStore = InMemoryEventStore | CosmosEventStore;

let fixture: PropertyFixture;
beforeAll(async () => {
  fixture = await PropertyFixture.start();
});
afterAll(() => fixture?.close());

// --- arbitraries ------------------------------------------------------------------------------------

const validishRecord: fc.Arbitrary<EventRecord> = fc
  .record({ version: anyNumber(1, 12), data: bytes(), ttl: expiry() })
  .map(({ ttl, ...rest }) => (ttl === undefined ? rest : { ...rest, ttl }));

/** What a caller without types could pass as a record. */
const notARecord = fc.constantFrom<unknown>(
  null,
  undefined,
  'record',
  7,
  { version: 1 },
  { version: 1, data: 'text' },
  { version: 1, data: [1, 2, 3] },
  { version: 1, data: new Uint16Array(2) },
  { version: '1', data: new Uint8Array(1) },
  { version: 1, data: new Uint8Array(1), ttl: '60' },
  { version: 1, data: new Uint8Array(1), ttl: null },
);

const anyRecord = fc.oneof({ weight: 12, arbitrary: validishRecord }, { weight: 1, arbitrary: notARecord }) as fc.Arbitrary<EventRecord>;

const anyRecords: fc.Arbitrary<EventRecord[]> = fc.oneof(
  { weight: 12, arbitrary: fc.array(anyRecord, { maxLength: 6 }) },
  { weight: 1, arbitrary: fc.sparseArray(anyRecord, { maxLength: 4, noTrailingHole: false }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<unknown>(undefined, null, 'records', { length: 1, 0: { version: 1, data: new Uint8Array(1) } }),
  },
) as fc.Arbitrary<EventRecord[]>;

// --- helpers ----------------------------------------------------------------------------------------

const hex = (data: Uint8Array) => Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex');

/** A history as comparable values; `ttl` within `slack` seconds when the store stamped it from its own clock. */
function expectSameHistory(actual: History, expected: History, slack = 0): void {
  expect(actual.records.map((r) => r.version)).toEqual(expected.records.map((r) => r.version));
  actual.records.forEach((r, i) => {
    const e = expected.records[i];
    expect(r.data).toBeInstanceOf(Uint8Array);
    expect(hex(r.data)).toBe(hex(e.data));
    if (e.ttl === undefined || r.ttl === undefined) expect(r.ttl).toBe(e.ttl);
    else expect(Math.abs(r.ttl - e.ttl)).toBeLessThanOrEqual(slack);
  });
}

function okValue<T>(outcome: Outcome<T>): T {
  if (outcome.kind !== 'ok') throw new Error(`expected the call to succeed, got ${JSON.stringify(outcome)}`);
  return outcome.value;
}

async function loadBoth(stores: Pair<EventStore>, id: string): Promise<Pair<History> | undefined> {
  const loaded = await onBoth(fixture, stores, (s) => s.load(id));
  expectAgreement(loaded);
  if (loaded.memory.kind === 'invalid') return undefined;
  const memory = okValue(loaded.memory);
  const cosmos = okValue(loaded.cosmos);
  return { memory, cosmos };
}

/** What `load` must show of a record just saved by a store with `storeTtl`: undefined when already expired. */
function expectedAfterSave(record: EventRecord, storeTtl: number, now: number): EventRecord | undefined {
  const expiresAt = record.ttl && record.ttl > 0 ? record.ttl : storeTtl > 0 ? now + storeTtl : undefined;
  if (expiresAt !== undefined && expiresAt <= now) return undefined;
  return expiresAt === undefined ? { version: record.version, data: record.data } : { version: record.version, data: record.data, ttl: expiresAt };
}

// --- properties -------------------------------------------------------------------------------------

describe.each([
  ['without a store TTL', 0],
  ['with a store TTL', 3600],
])('save then load, %s', (_label, storeTtl) => {
  it('stores every record exactly, or refuses the call before any request; both stores alike, nothing half-written', async () => {
    await fc.assert(
      // A few calls on one aggregate, so later ones meet the versions of earlier ones (conflicts, gaps).
      fc.asyncProperty(keyText, fc.array(anyRecords, { minLength: 1, maxLength: 3 }), async (id, calls) => {
        // Fresh stores each run: a failed run cannot leave the two sides apart for the next (or for shrinking).
        const stores = await fixture.eventStores(storeTtl ? { eventTtlSeconds: storeTtl } : {});
        for (const records of calls) {
          const before = await loadBoth(stores, id);
          const saved = await onBoth(fixture, stores, (s) => s.save(id, records));
          expectAgreement(saved);
          if (saved.memory.kind === 'conflict') expect(saved.cosmos).toEqual(saved.memory);
          if (before === undefined) {
            // An unusable id is refused by every call.
            expect(saved.memory).toMatchObject({ kind: 'invalid', field: 'aggregateId' });
            return;
          }
          const after = await loadBoth(stores, id);
          if (!after) throw new Error('a valid id became invalid');
          expectSameHistory(after.cosmos, after.memory, storeTtl ? 2 : 0);
          if (saved.memory.kind !== 'ok') {
            // Refused, or a conflict within one chunk: nothing of the call is stored.
            expectSameHistory(after.memory, before.memory);
            expectSameHistory(after.cosmos, before.cosmos);
            continue;
          }
          const now = nowSeconds();
          const added = records.flatMap((r) => expectedAfterSave(r, storeTtl, now) ?? []);
          const expected = [...before.memory.records, ...added].sort((x, y) => x.version - y.version);
          expectSameHistory(after.memory, { records: expected }, storeTtl ? 2 : 0);
        }
      }),
      { numRuns: runs(100) },
    );
  });
});

describe('loadTail', () => {
  it('gives the newest n live records ascending, no request for n <= 0, and refuses a count that is not a number', async () => {
    const tailCount = fc.oneof(anyNumber(-3, 14), fc.constantFrom<unknown>('3', null, undefined, 2n)) as fc.Arbitrary<number>;
    await fc.assert(
      fc.asyncProperty(
        keyText,
        fc.uniqueArray(fc.integer({ min: 1, max: 40 }), { maxLength: 12 }),
        fc.array(tailCount, { minLength: 1, maxLength: 4 }),
        async (id, versions, counts) => {
          const stores = await fixture.eventStores();
          const seeded = await onBoth(fixture, stores, (s) =>
            s.save(id, versions.map((v) => ({ version: v, data: Uint8Array.of(v) }))),
          );
          expectAgreement(seeded);
          const all = await loadBoth(stores, id);
          for (const n of counts) {
            const tail = await onBoth(fixture, stores, (s) => s.loadTail(id, n));
            expectAgreement(tail);
            if (tail.memory.kind !== 'ok' || !all) continue;
            const memory = okValue(tail.memory);
            expectSameHistory(okValue(tail.cosmos), memory);
            const want = n >= 1 ? all.memory.records.slice(-Math.floor(n)) : [];
            expectSameHistory(memory, { records: n >= 1 ? want : [] });
            if (!(n >= 1)) expect(tail.requests).toBe(0);
          }
        },
      ),
      { numRuns: runs(60) },
    );
  });
});

describe('readStream', () => {
  it('yields what load returns, for any page size, or refuses before any request; both stores alike', async () => {
    const pageSize = fc.oneof(
      { weight: 2, arbitrary: fc.constant(undefined) },
      { weight: 4, arbitrary: anyNumber(-1, 15) },
      { weight: 1, arbitrary: fc.constantFrom<unknown>('5', null, 2 ** 31) as fc.Arbitrary<number> },
    );
    const drain = async (stream: AsyncIterable<EventRecord>): Promise<History> => {
      const records: EventRecord[] = [];
      for await (const r of stream) records.push(r);
      return { records };
    };
    await fc.assert(
      fc.asyncProperty(keyText, fc.uniqueArray(fc.integer({ min: 1, max: 60 }), { maxLength: 30 }), expiry(), pageSize, async (id, versions, ttl, size) => {
        const stores = await fixture.eventStores();
        const records = versions.map((v, i) => ({ version: v, data: Uint8Array.of(v), ...(i % 4 === 0 && ttl !== undefined && { ttl }) }));
        expectAgreement(await onBoth(fixture, stores, (s) => s.save(id, records)));
        const streamed = await onBoth(fixture, stores, (s) => drain(s.readStream(id, size === undefined ? {} : { pageSize: size })));
        expectAgreement(streamed);
        if (streamed.memory.kind !== 'ok') return;
        const loaded = await loadBoth(stores, id);
        expectSameHistory(okValue(streamed.memory), loaded!.memory);
        expectSameHistory(okValue(streamed.cosmos), loaded!.cosmos);
      }),
      { numRuns: runs(60) },
    );
  });
});

describe('store options', () => {
  it('eventTtlSeconds is accepted by both constructors alike, and what is accepted stamps records that load back', async () => {
    const ttlSeconds = fc.oneof(anyNumber(0, 10 ** 6), fc.integer({ min: 2 ** 31 - 100, max: 2 ** 31 + 100 }), fc.constant(undefined));
    const { events } = await fixture.containers();
    await fc.assert(
      fc.asyncProperty(ttlSeconds, async (eventTtlSeconds) => {
        const options = { eventTtlSeconds };
        const build = (make: () => EventStore) => outcomeOfSync(make);
        const memory = build(() => new InMemoryEventStore(options));
        const cosmos = build(() => new CosmosEventStore(events, options));
        expect(cosmos.kind).toBe(memory.kind);
        if (memory.kind !== 'ok' || cosmos.kind !== 'ok') {
          expect(memory).toMatchObject({ kind: 'invalid', field: 'eventTtlSeconds' });
          return;
        }
        const id = `ttl-option-${Math.random()}`;
        const stores = { memory: memory.value, cosmos: cosmos.value };
        const saved = await onBoth(fixture, stores, (s) => s.save(id, [{ version: 1, data: Uint8Array.of(1) }]));
        expectAgreement(saved);
        expect(saved.memory.kind).toBe('ok');
        const loaded = await loadBoth(stores, id);
        expectSameHistory(loaded!.cosmos, loaded!.memory, 2);
        const ttl = eventTtlSeconds ? nowSeconds() + eventTtlSeconds : undefined;
        expectSameHistory(loaded!.memory, { records: [{ version: 1, data: Uint8Array.of(1), ...(ttl && { ttl }) }] }, 2);
      }),
      { numRuns: runs(40) },
    );
  });
});

describe('calls of more than one chunk', () => {
  let stores: Pair<EventStore>;
  beforeAll(async () => {
    stores = await fixture.eventStores();
  });

  it('one bad record anywhere in a long call writes none of it and sends nothing', async () => {
    const badRecord = fc.constantFrom<(v: number) => unknown>(
      () => ({ version: 0, data: new Uint8Array(1) }),
      () => ({ version: 1, data: new Uint8Array(1) }), // a duplicate of the first
      (v) => ({ version: v + 0.5, data: new Uint8Array(1) }),
      (v) => ({ version: v, data: 'not bytes' }),
      (v) => ({ version: v, data: new Uint8Array(1), ttl: -1 }),
      () => null,
    );
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: 260 }), fc.nat(), badRecord, async (length, at, bad) => {
        const id = `long-${n++}-${Date.now()}`;
        const records: unknown[] = Array.from({ length }, (_, i) => ({ version: i + 1, data: Uint8Array.of(i & 0xff) }));
        const i = 1 + (at % (length - 1));
        records[i] = bad(i + 1);
        const saved = await onBoth(fixture, stores, (s) => s.save(id, records as EventRecord[]));
        expectAgreement(saved);
        expect(saved.memory).toMatchObject({ kind: 'invalid', field: expect.stringMatching(new RegExp(`^records\\[${i}\\]`)) });
        const loaded = await loadBoth(stores, id);
        expect(loaded!.memory.records).toEqual([]);
        expect(loaded!.cosmos.records).toEqual([]);
      }),
      { numRuns: runs(25) },
    );
  });

  it('a valid long call is stored whole, in order, whatever the versions’ gaps', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.integer({ min: 1, max: 100_000 }), { minLength: 1, maxLength: 260 }), async (versions) => {
        const id = `gaps-${n++}-${Date.now()}`;
        const records = versions.map((v) => ({ version: v, data: Uint8Array.of(v & 0xff, v >> 8) }));
        const saved = await onBoth(fixture, stores, (s) => s.save(id, records));
        expectAgreement(saved);
        expect(saved.memory.kind).toBe('ok');
        expect(saved.requests).toBe(Math.ceil(versions.length / 100));
        const loaded = await loadBoth(stores, id);
        const expected = { records: [...records].sort((x, y) => x.version - y.version) };
        expectSameHistory(loaded!.memory, expected);
        expectSameHistory(loaded!.cosmos, expected);
      }),
      { numRuns: runs(15) },
    );
  });
});

describe('data around the 2 MB item limit', () => {
  let stores: Pair<EventStore>;
  beforeAll(async () => {
    stores = await fixture.eventStores();
  });

  it('a record is stored byte for byte or refused before any request, at every size either side of the limit', async () => {
    // Base64 makes 4 characters of 3 bytes: about 1,572,000 bytes of data fill a 2 MB document.
    const size = fc.oneof(
      { weight: 3, arbitrary: fc.integer({ min: 1_571_900, max: 1_572_200 }) },
      { weight: 1, arbitrary: fc.integer({ min: 1_000_000, max: 2_200_000 }) },
    );
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(size, { minLength: 1, maxLength: 3 }), keyText, async (sizes, label) => {
        const id = `big-${n++}-${label}`.slice(0, 600);
        const records = sizes.map((s, i) => ({ version: i + 1, data: new Uint8Array(s).fill(i + 1) }));
        const saved = await onBoth(fixture, stores, (s) => s.save(id, records));
        expectAgreement(saved);
        const loaded = await loadBoth(stores, id);
        if (!loaded) return;
        if (saved.memory.kind === 'ok') {
          expect(loaded.cosmos.records).toHaveLength(records.length);
          loaded.cosmos.records.forEach((r, i) => expect(sameBytes(r.data, records[i].data)).toBe(true));
        } else {
          expect(saved.memory).toMatchObject({ kind: 'invalid', field: expect.stringMatching(/^records\[\d\]\.data$/) });
          expect(loaded.cosmos.records).toEqual([]);
        }
        expect(loaded.memory.records.map((r) => r.version)).toEqual(loaded.cosmos.records.map((r) => r.version));
      }),
      { numRuns: runs(6) },
    );
  });
});

function outcomeOfSync<T>(make: () => T): Outcome<T> {
  try {
    return { kind: 'ok', value: make() };
  } catch (err) {
    if (err instanceof ValidationError) return { kind: 'invalid', field: err.field };
    throw err;
  }
}

describe('stream lifecycle', () => {
  type Op =
    | { op: 'save'; from: number; count: number; expected: unknown }
    | { op: 'truncate'; version: number }
    | { op: 'delete' }
    | { op: 'range'; from?: number; to?: number };
  const anOp: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 5,
      arbitrary: fc.record({
        op: fc.constant('save' as const),
        from: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 12 })),
        count: fc.integer({ min: 1, max: 3 }),
        expected: fc.oneof(fc.constantFrom<unknown>(undefined, 'any', 'no-stream', -1, 'x'), fc.integer({ min: 0, max: 12 })),
      }),
    },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('truncate' as const), version: anyNumber(0, 14) }) },
    { weight: 1, arbitrary: fc.constant({ op: 'delete' as const }) },
    {
      weight: 2,
      arbitrary: fc.record(
        { op: fc.constant('range' as const), from: anyNumber(0, 14), to: anyNumber(0, 14) },
        { requiredKeys: ['op'] },
      ),
    },
  );

  it('expected versions, truncation, erasure and ranges: both stores answer alike and hold the same stream', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(anOp, { minLength: 1, maxLength: 8 }), async (ops) => {
        const stores = await fixture.eventStores();
        const id = `life-${Math.random().toString(36).slice(2)}`;
        const seed = Array.from({ length: 5 }, (_, i) => ({ version: i + 1, data: Uint8Array.of(i + 1) }));
        expectAgreement(await onBoth(fixture, stores, (s) => s.save(id, seed)));
        // Every version ever stored: truncation and erasure free none, so no save may write one again. (A version
        // never stored may be, below the highest too: without an expected version a save is create-only, gaps
        // allowed, as protosource's.)
        const stored = new Set(seed.map((r) => r.version));
        for (const step of ops) {
          const outcome = await onBoth(fixture, stores, async (s): Promise<unknown> => {
            switch (step.op) {
              case 'save': {
                const records = Array.from({ length: step.count }, (_, i) => ({ version: step.from + i, data: Uint8Array.of(step.from + i) }));
                return s.save(id, records, step.expected === undefined ? {} : { expectedVersion: step.expected as never });
              }
              case 'truncate':
                return s.truncateBefore(id, step.version);
              case 'delete':
                return s.deleteStream(id);
              case 'range':
                return (await s.loadRange(id, { fromVersion: step.from, toVersion: step.to })).records.map((r) => r.version);
            }
          });
          expectAgreement(outcome);
          if (step.op === 'save' && outcome.cosmos.kind === 'ok') {
            const written = Array.from({ length: step.count }, (_, i) => step.from + i);
            expect(written.filter((v) => stored.has(v))).toEqual([]);
          }
          if (outcome.memory.kind === 'ok' && step.op === 'range') expect(okValue(outcome.cosmos)).toEqual(okValue(outcome.memory));
          const loaded = await loadBoth(stores, id);
          expectSameHistory(loaded!.cosmos, loaded!.memory);
          expect(loaded!.cosmos.records.map((r) => r.type)).toEqual(loaded!.memory.records.map((r) => r.type));
          for (const record of loaded!.cosmos.records) stored.add(record.version);
        }
      }),
      { numRuns: runs(40) },
    );
  });
});
