/*
 * The event store's contract (SPEC §2-4), written once against the interfaces and run against every
 * implementation: the in-memory stores and the Cosmos DB stores on the embedded server. A behaviour that
 * differs between them is a bug in one of them.
 *
 * Every test uses fresh aggregate ids, partition keys and index keys, so the suites can share one server.
 */
import { randomUUID } from 'node:crypto';
import {
  ConcurrencyError,
  decodeAggregateBody,
  DEFAULT_COMPRESS_THRESHOLD,
  EventStoreError,
  isConflict,
  NotFoundError,
  ValidationError,
  type AggregateKeys,
  type AggregateStore,
  type EventRecord,
  type GsiSlots,
  type History,
  type Materializable,
  type OpaqueData,
  type OpaqueQuery,
  type OpaqueStore,
  type OperationOptions,
  type SnapshotTailStore,
  type SortCondition,
  type StreamingStore,
} from '../../src/index.js';
import { jest } from '@jest/globals';
import { rejectionOf } from '../support/rejection.js';

/** What the contract exercises: an event store that can materialize into `opaque`. */
export interface StoreUnderTest {
  store: SnapshotTailStore & StreamingStore & AggregateStore;
  /** The opaque store `store.saveAggregate` writes to (unused when built without one). */
  opaque: OpaqueStore;
  close?: () => Promise<void>;
}

/** How the suite asks for a store; the factory must honour each field. */
export interface StoreSetup {
  eventTtlSeconds?: number;
  compressThreshold?: number;
  /** false: build the event store without an opaque store, so `saveAggregate` has nowhere to write. */
  withOpaqueStore?: boolean;
}

export type StoreFactory = (setup: StoreSetup) => StoreUnderTest | Promise<StoreUnderTest>;

// --- helpers ---------------------------------------------------------------------------------------

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MiB = 1024 * 1024;

const unique = (label: string) => `${label}-${randomUUID()}`;
const nowSeconds = () => Math.floor(Date.now() / 1000);
const text = (s: string) => encoder.encode(s);

/**
 * Runs `fn` with the clock a minute ahead: records saved with an expiry 30 s away have expired for the
 * store, which filters by its own clock whether or not the server purged them yet. (A store refuses an
 * expiry already past, so expired records can only be made by waiting.)
 */
async function aMinuteLater<T>(fn: () => Promise<T>): Promise<T> {
  const realNow = Date.now.bind(Date);
  const clock = jest.spyOn(Date, 'now').mockImplementation(() => realNow() + 60_000);
  try {
    return await fn();
  } finally {
    clock.mockRestore();
  }
}

function record(version: number, data = `event ${version}`, ttl?: number): EventRecord {
  return ttl === undefined ? { version, data: text(data) } : { version, data: text(data), ttl };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

const versionsOf = (history: History) => history.records.map((r) => r.version);

/** Everything `readStream` yields, as a history. */
async function drain(stream: AsyncIterable<EventRecord>): Promise<History> {
  const records: EventRecord[] = [];
  for await (const r of stream) records.push(r);
  return { records };
}
const textsOf = (history: History) => history.records.map((r) => decoder.decode(r.data));
const sameBytes = (actual: Uint8Array, expected: Uint8Array) =>
  Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(
    Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength),
  );

async function expectValidationError(promise: Promise<unknown>, field: string | RegExp): Promise<ValidationError> {
  const err = await rejectionOf(promise);
  expect(err).toBeInstanceOf(ValidationError);
  const validation = err as ValidationError;
  if (typeof field === 'string') expect(validation.field).toBe(field);
  else expect(validation.field).toMatch(field);
  expect(validation.message).toContain(validation.field);
  return validation;
}

function abortedOptions(): OperationOptions {
  const controller = new AbortController();
  controller.abort();
  return { abortSignal: controller.signal };
}

async function expectAborted(promise: Promise<unknown>): Promise<void> {
  expect(await rejectionOf(promise)).toMatchObject({ name: 'AbortError' });
}

function doc(pk: string, sk: string, extra: Partial<OpaqueData> = {}): OpaqueData {
  return { pk, sk, body: text(`${pk}|${sk}`), ...extra };
}

/** An aggregate whose stored JSON is its `toJSON`, not its fields (`version` and the rest stay out). */
class Order implements Materializable {
  constructor(
    readonly id: string,
    readonly lines: string[],
    public version?: number,
    public ttlSeconds?: number,
    private readonly gsi?: GsiSlots,
  ) {}

  keys(): AggregateKeys {
    return { pk: `order#${this.id}`, sk: 'state', ...(this.gsi && { gsi: this.gsi }) };
  }

  toJSON(): unknown {
    return { orderId: this.id, lines: this.lines, lineCount: this.lines.length };
  }
}

const isGzip = (body: Uint8Array) => body.length >= 2 && body[0] === 0x1f && body[1] === 0x8b;

// --- the suite -------------------------------------------------------------------------------------

/**
 * Registers the contract suite for one implementation.
 *
 * @example
 * describeStoreContract('InMemoryEventStore', (setup) => {
 *   const opaque = new InMemoryOpaqueStore();
 *   return { opaque, store: new InMemoryEventStore({ ...setup, opaqueStore: opaque }) };
 * });
 */
export function describeStoreContract(name: string, factory: StoreFactory): void {
  describe(`store contract: ${name}`, () => {
    const opened: StoreUnderTest[] = [];

    async function open(setup: StoreSetup = {}): Promise<StoreUnderTest> {
      const subject = await factory(setup);
      opened.push(subject);
      return subject;
    }

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close?.()));
    });

    describe('save and load', () => {
      it('saves a single record and loads it back', async () => {
        const { store } = await open();
        const id = unique('single');
        await store.save(id, [record(1, 'created')]);
        const history = await store.load(id);
        expect(versionsOf(history)).toEqual([1]);
        expect(textsOf(history)).toEqual(['created']);
      });

      it('saves several records in one call', async () => {
        const { store } = await open();
        const id = unique('multi');
        await store.save(id, [record(1), record(2), record(3)]);
        const history = await store.load(id);
        expect(versionsOf(history)).toEqual([1, 2, 3]);
        expect(textsOf(history)).toEqual(['event 1', 'event 2', 'event 3']);
      });

      it('appends to an existing stream', async () => {
        const { store } = await open();
        const id = unique('append');
        await store.save(id, [record(1), record(2)]);
        await store.save(id, [record(3)]);
        await store.save(id, [record(4), record(5)]);
        expect(versionsOf(await store.load(id))).toEqual([1, 2, 3, 4, 5]);
      });

      it('treats zero records as a no-op', async () => {
        const { store } = await open();
        const id = unique('zero');
        await expect(store.save(id, [])).resolves.toBeUndefined();
        expect((await store.load(id)).records).toEqual([]);
        await store.save(id, [record(1)]);
        await store.save(id, []);
        expect(versionsOf(await store.load(id))).toEqual([1]);
      });

      it('saves more than 100 records in one call, all present and in order', async () => {
        const { store } = await open();
        const id = unique('many');
        await store.save(id, range(1, 250).map((v) => record(v)));
        const history = await store.load(id);
        expect(versionsOf(history)).toEqual(range(1, 250));
        expect(textsOf(history)).toEqual(range(1, 250).map((v) => `event ${v}`));
      });

      it('accepts any non-empty aggregate id: slashes, hashes, quotes, spaces, unicode', async () => {
        const { store } = await open();
        for (const label of ['a/b\\c?d#e%f', "it's \"quoted\"", ' spaced out ', 'ünïcødé 😀', 'NA']) {
          const id = `${label}-${randomUUID()}`;
          await store.save(id, [record(1, label)]);
          expect(textsOf(await store.load(id))).toEqual([label]);
          expect(textsOf(await store.loadTail(id, 1))).toEqual([label]);
        }
      });

      it('loads a stream larger than one 4 MB response page', async () => {
        const { store } = await open();
        const id = unique('big-stream');
        const records = range(1, 4).map((v) => ({ version: v, data: new Uint8Array(Math.floor(1.4 * MiB)).fill(v) }));
        await store.save(id, records);
        const loaded = (await store.load(id)).records;
        expect(versionsOf({ records: loaded })).toEqual([1, 2, 3, 4]);
        loaded.forEach((r, i) => expect(sameBytes(r.data, records[i].data)).toBe(true));
        expect(versionsOf(await store.loadTail(id, 3))).toEqual([2, 3, 4]);
      });

      it('keeps streams of different aggregates apart', async () => {
        const { store } = await open();
        const a = unique('apart-a');
        const b = unique('apart-b');
        await store.save(a, [record(1, 'a1'), record(2, 'a2')]);
        await store.save(b, [record(1, 'b1')]);
        expect(textsOf(await store.load(a))).toEqual(['a1', 'a2']);
        expect(textsOf(await store.load(b))).toEqual(['b1']);
      });

      it('gives an empty history for an unknown aggregate', async () => {
        const { store } = await open();
        await expect(store.load(unique('unknown'))).resolves.toEqual({ records: [] });
      });

      it('orders by version numerically: 2 before 10', async () => {
        const { store } = await open();
        const id = unique('order');
        const shuffled = [10, 2, 11, 1, 9, 3, 12, 100, 20];
        await store.save(id, shuffled.map((v) => record(v)));
        const expected = [...shuffled].sort((x, y) => x - y);
        expect(versionsOf(await store.load(id))).toEqual(expected);
        expect(versionsOf(await store.loadTail(id, 4))).toEqual(expected.slice(-4));
      });

      it('round-trips every byte value, even from a view into a larger buffer', async () => {
        const { store } = await open();
        const id = unique('bytes');
        const backing = new Uint8Array(256 + 7);
        for (let i = 0; i < 256; i++) backing[i + 3] = i;
        const allBytes = new Uint8Array(backing.buffer, 3, 256);
        const awkward = Uint8Array.from([0xfb, 0xff, 0xbf, 0x00]); // '+' and '/' in base64, padded
        await store.save(id, [
          { version: 1, data: allBytes },
          { version: 2, data: new Uint8Array(0) },
          { version: 3, data: awkward },
        ]);
        const [first, second, third] = (await store.load(id)).records;
        expect(first.data).toBeInstanceOf(Uint8Array);
        expect(first.data.byteLength).toBe(256);
        expect(sameBytes(first.data, allBytes)).toBe(true);
        expect(second.data).toBeInstanceOf(Uint8Array);
        expect(second.data.byteLength).toBe(0);
        expect(sameBytes(third.data, awkward)).toBe(true);
      });

      it('stores a copy: changing the bytes after save does not change the history', async () => {
        const { store } = await open();
        const id = unique('copy');
        const data = text('original');
        await store.save(id, [{ version: 1, data }]);
        data.fill(0x41);
        const [loaded] = (await store.load(id)).records;
        expect(decoder.decode(loaded.data)).toBe('original');
        loaded.data.fill(0x42);
        expect(textsOf(await store.load(id))).toEqual(['original']);
      });

      it('stores a record just under the 2 MB item limit', async () => {
        const { store } = await open();
        const id = unique('large');
        const data = new Uint8Array(Math.floor(1.4 * MiB)).map((_, i) => (i * 31) & 0xff);
        await store.save(id, [{ version: 1, data }]);
        const [loaded] = (await store.load(id)).records;
        expect(sameBytes(loaded.data, data)).toBe(true);
      });
    });

    describe('conflicts', () => {
      it('refuses a version that already exists with a ConcurrencyError, writing nothing of that chunk', async () => {
        const { store } = await open();
        const id = unique('conflict');
        await store.save(id, [record(1, 'first'), record(2, 'first')]);
        const err = await rejectionOf(store.save(id, [record(3, 'second'), record(4, 'second'), record(2, 'second')]));
        expect(err).toBeInstanceOf(ConcurrencyError);
        expect(err).toBeInstanceOf(EventStoreError);
        expect(isConflict(err)).toBe(true);
        expect((err as ConcurrencyError).aggregateId).toBe(id);
        expect((err as ConcurrencyError).versions).toEqual([2]);
        const history = await store.load(id);
        expect(versionsOf(history)).toEqual([1, 2]);
        expect(textsOf(history)).toEqual(['first', 'first']);
      });

      it('names the first conflicting version in call order, as a Cosmos DB batch answer does', async () => {
        const { store } = await open();
        const id = unique('first-conflict');
        await store.save(id, [record(1), record(2), record(3)]);
        const err = await rejectionOf(store.save(id, [record(4), record(3), record(2), record(5)]));
        expect(isConflict(err)).toBe(true);
        expect((err as ConcurrencyError).versions).toEqual([3]);
        expect((err as Error).message).toContain('3');
        expect(versionsOf(await store.load(id))).toEqual([1, 2, 3]);
      });

      it('keeps earlier chunks of a call when a later chunk conflicts (chunks are not atomic together)', async () => {
        const { store } = await open();
        const id = unique('chunks');
        await store.save(id, [record(120, 'existing')]);
        const err = await rejectionOf(store.save(id, range(1, 150).map((v) => record(v))));
        expect(isConflict(err)).toBe(true);
        expect((err as ConcurrencyError).versions).toEqual([120]);
        const history = await store.load(id);
        expect(versionsOf(history)).toEqual([...range(1, 100), 120]);
        expect(textsOf(history).at(-1)).toBe('existing');
      });

      it('isConflict is false for every other error', async () => {
        const { store } = await open();
        const validation = await rejectionOf(store.save(unique('x'), [record(0)]));
        expect(validation).toBeInstanceOf(ValidationError);
        expect(isConflict(validation)).toBe(false);
        expect(isConflict(new EventStoreError('boom'))).toBe(false);
        expect(isConflict(new Error('version 1 already exists'))).toBe(false);
        expect(isConflict({ code: 409 })).toBe(false);
        expect(isConflict(undefined)).toBe(false);
      });

      it('lets exactly one of two writers racing for the same versions win', async () => {
        const { store } = await open();
        const id = unique('race2');
        await store.save(id, [record(1, 'base')]);
        const outcomes = await Promise.allSettled(
          ['left', 'right'].map((writer) => store.save(id, [2, 3, 4].map((v) => record(v, `${writer} ${v}`)))),
        );
        const won = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [['left', 'right'][i]] : []));
        const lost = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(1);
        expect(isConflict(lost[0])).toBe(true);
        const history = await store.load(id);
        expect(versionsOf(history)).toEqual([1, 2, 3, 4]);
        expect(textsOf(history)).toEqual(['base', `${won[0]} 2`, `${won[0]} 3`, `${won[0]} 4`]);
      });

      it('with five writers appending concurrently, each version has one winner and the stream has no gap', async () => {
        const { store } = await open();
        const id = unique('race5');
        const target = 20;
        const writers = 5;
        const winners = new Map<number, string>();
        let conflicts = 0;
        // Every writer reads the same (empty) tail before anyone writes, so the first round is a real race.
        let arrived = 0;
        let release!: () => void;
        const allRead = new Promise<void>((resolve) => (release = resolve));

        async function writer(name: string): Promise<void> {
          for (let attempt = 0; attempt < 200; attempt++) {
            const [last] = (await store.loadTail(id, 1)).records;
            if (attempt === 0 && ++arrived === writers) release();
            if (attempt === 0) await allRead;
            const next = (last?.version ?? 0) + 1;
            if (next > target) return;
            const batch = [next, next + 1].map((v) => record(v, `${name} ${v}`));
            try {
              await store.save(id, batch);
              for (const { version } of batch) {
                expect(winners.has(version)).toBe(false);
                winners.set(version, name);
              }
            } catch (err) {
              if (!isConflict(err)) throw err;
              conflicts++;
            }
          }
          throw new Error(`${name} gave up after 200 attempts`);
        }

        await Promise.all(range(1, writers).map((n) => writer(`writer-${n}`)));
        const history = await store.load(id);
        expect(versionsOf(history)).toEqual(range(1, target));
        expect([...winners.keys()].sort((x, y) => x - y)).toEqual(range(1, target));
        expect(textsOf(history)).toEqual(range(1, target).map((v) => `${winners.get(v)} ${v}`));
        expect(conflicts).toBeGreaterThanOrEqual(writers - 1);
      });
    });

    describe('loadTail', () => {
      it('returns the last n records, ascending', async () => {
        const { store } = await open();
        const id = unique('tail');
        await store.save(id, range(1, 12).map((v) => record(v)));
        const tail = await store.loadTail(id, 3);
        expect(versionsOf(tail)).toEqual([10, 11, 12]);
        expect(textsOf(tail)).toEqual(['event 10', 'event 11', 'event 12']);
      });

      it('returns all records when fewer than n exist', async () => {
        const { store } = await open();
        const id = unique('tail-few');
        await store.save(id, [record(1), record(2)]);
        expect(versionsOf(await store.loadTail(id, 5))).toEqual([1, 2]);
        expect(versionsOf(await store.loadTail(id, 1000))).toEqual([1, 2]);
      });

      it('returns an empty history for an unknown aggregate', async () => {
        const { store } = await open();
        await expect(store.loadTail(unique('tail-none'), 3)).resolves.toEqual({ records: [] });
      });

      it('returns an empty history for n = 0 and negative n', async () => {
        const { store } = await open();
        const id = unique('tail-zero');
        await store.save(id, [record(1), record(2)]);
        await expect(store.loadTail(id, 0)).resolves.toEqual({ records: [] });
        await expect(store.loadTail(id, -1)).resolves.toEqual({ records: [] });
        await expect(store.loadTail(id, -100)).resolves.toEqual({ records: [] });
      });

      it('stops at n on a stream longer than a page', async () => {
        const { store } = await open();
        const id = unique('tail-long');
        await store.save(id, range(1, 250).map((v) => record(v)));
        expect(versionsOf(await store.loadTail(id, 1))).toEqual([250]);
        expect(versionsOf(await store.loadTail(id, 5))).toEqual(range(246, 250));
        expect(versionsOf(await store.loadTail(id, 150))).toEqual(range(101, 250));
      });
    });

    describe('readStream', () => {
      it('yields what load returns, ascending, whatever the page size', async () => {
        const { store } = await open();
        const id = unique('stream');
        const shuffled = [...range(1, 120), ...range(200, 330)].sort((x, y) => ((x * 7919) % 251) - ((y * 7919) % 251));
        await store.save(id, shuffled.map((v) => record(v)));
        const loaded = await store.load(id);
        expect(versionsOf(loaded)).toEqual([...range(1, 120), ...range(200, 330)]);
        for (const pageSize of [undefined, 1, 7, 100, 250, 251, 10_000]) {
          const streamed = await drain(store.readStream(id, { pageSize }));
          expect(versionsOf(streamed)).toEqual(versionsOf(loaded));
          expect(textsOf(streamed)).toEqual(textsOf(loaded));
        }
      });

      it('yields every byte and the ttl as load does', async () => {
        const { store } = await open();
        const id = unique('stream-bytes');
        const expiry = nowSeconds() + 3600;
        const data = Uint8Array.from(range(0, 255));
        await store.save(id, [{ version: 1, data, ttl: expiry }, { version: 2, data: new Uint8Array(0) }]);
        const [first, second] = (await drain(store.readStream(id))).records;
        expect(sameBytes(first.data, data)).toBe(true);
        expect(first.ttl).toBe(expiry);
        expect(second.data.byteLength).toBe(0);
        expect(second.ttl ?? 0).toBe(0);
      });

      it('yields nothing for an unknown aggregate', async () => {
        const { store } = await open();
        expect((await drain(store.readStream(unique('stream-none')))).records).toEqual([]);
      });

      it('never yields expired records', async () => {
        const { store } = await open();
        const id = unique('stream-ttl');
        const soon = nowSeconds() + 30;
        await store.save(id, range(1, 9).map((v) => record(v, `event ${v}`, v % 3 === 0 ? soon : undefined)));
        const streamed = await aMinuteLater(() => drain(store.readStream(id, { pageSize: 2 })));
        expect(versionsOf(streamed)).toEqual([1, 2, 4, 5, 7, 8]);
      });

      it('refuses a bad aggregate id or page size on the first iteration', async () => {
        const { store } = await open();
        await expectValidationError(drain(store.readStream('')), 'aggregateId');
        await expectValidationError(drain(store.readStream(`${unique('lone')}\ud800`)), 'aggregateId');
        for (const pageSize of [0, -1, 1.5, Number.NaN, 2 ** 31, '10' as unknown as number]) {
          await expectValidationError(drain(store.readStream(unique('p'), { pageSize })), 'pageSize');
        }
      });

      it('stops with an AbortError when the signal aborts between pages, after whole records only', async () => {
        const { store } = await open();
        const id = unique('stream-abort');
        await store.save(id, range(1, 30).map((v) => record(v)));
        await expectAborted(drain(store.readStream(id, abortedOptions())));
        const controller = new AbortController();
        const seen: number[] = [];
        const err = await rejectionOf(
          (async () => {
            for await (const r of store.readStream(id, { pageSize: 10, abortSignal: controller.signal })) {
              seen.push(r.version);
              if (r.version === 4) controller.abort();
            }
          })(),
        );
        expect(err).toMatchObject({ name: 'AbortError' });
        expect(seen).toEqual(range(1, 10));
      });

      it('never yields a version twice or out of order while a writer appends', async () => {
        const { store } = await open();
        const id = unique('stream-live');
        await store.save(id, range(1, 20).map((v) => record(v)));
        const seen: number[] = [];
        let next = 21;
        for await (const r of store.readStream(id, { pageSize: 5 })) {
          seen.push(r.version);
          if (next <= 40) await store.save(id, [record(next++)]);
        }
        expect(seen.slice(0, 20)).toEqual(range(1, 20));
        expect([...seen].sort((x, y) => x - y)).toEqual(seen);
        expect(new Set(seen).size).toBe(seen.length);
      });
    });

    describe('expiry (ttl)', () => {
      it("stamps a record's own ttl and returns it on load", async () => {
        const { store } = await open();
        const id = unique('ttl-own');
        const expiry = nowSeconds() + 3600;
        await store.save(id, [record(1, 'expiring', expiry), record(2, 'forever')]);
        const [first, second] = (await store.load(id)).records;
        expect(first.ttl).toBe(expiry);
        expect(second.ttl ?? 0).toBe(0);
      });

      it('applies the store-level eventTtlSeconds to records without their own ttl (including ttl 0)', async () => {
        const { store } = await open({ eventTtlSeconds: 600 });
        const id = unique('ttl-store');
        const before = nowSeconds();
        await store.save(id, [record(1), { ...record(2), ttl: 0 }]);
        const after = nowSeconds();
        for (const r of (await store.load(id)).records) {
          expect(r.ttl).toBeGreaterThanOrEqual(before + 600);
          expect(r.ttl).toBeLessThanOrEqual(after + 600);
        }
        expect((await store.load(id)).records).toHaveLength(2);
      });

      it("lets a record's own ttl win over the store-level ttl", async () => {
        const { store } = await open({ eventTtlSeconds: 600 });
        const id = unique('ttl-wins');
        const own = nowSeconds() + 90_000;
        await store.save(id, [record(1, 'own', own)]);
        expect((await store.load(id)).records[0].ttl).toBe(own);
      });

      it('never returns expired records from load or loadTail', async () => {
        const { store } = await open();
        const id = unique('ttl-past');
        const soon = nowSeconds() + 30;
        await store.save(id, [record(1), record(2, 'gone', soon), record(3), record(4, 'gone', soon)]);
        await aMinuteLater(async () => {
          expect(versionsOf(await store.load(id))).toEqual([1, 3]);
          // The newest record is expired: the tail still holds n live records.
          expect(versionsOf(await store.loadTail(id, 1))).toEqual([3]);
          expect(versionsOf(await store.loadTail(id, 2))).toEqual([1, 3]);
          expect(versionsOf(await store.loadTail(id, 10))).toEqual([1, 3]);
        });
      });

      it('refuses a record ttl that is not in the future, and writes nothing of the call', async () => {
        const { store } = await open();
        const id = unique('ttl-not-future');
        const now = nowSeconds();
        // An expiry already reached, "now" itself, and seconds-from-now mistaken for an epoch time.
        for (const ttl of [now - 60, now, 3600, 1]) {
          const err = await rejectionOf(store.save(id, [record(1), record(2, 'x', ttl)]));
          expect(err).toBeInstanceOf(ValidationError);
          expect((err as ValidationError).field).toBe('records[1].ttl');
          expect((err as ValidationError).message).toMatch(/not in the future.*epoch seconds/);
          // A small number reads as seconds from now: the message says what to give instead.
          if (ttl < 1_000_000) expect((err as ValidationError).message).toMatch(new RegExp(`for ${ttl} seconds from now give \\d+`));
          else expect((err as ValidationError).message).not.toContain('seconds from now');
        }
        expect((await store.load(id)).records).toEqual([]);
        // The versions stay free: the same records with a future expiry (or none) are stored.
        await store.save(id, [record(1), record(2, 'x', now + 600)]);
        expect(versionsOf(await store.load(id))).toEqual([1, 2]);
      });
    });

    describe('validation (before anything is written)', () => {
      async function expectNothingWritten(store: SnapshotTailStore, id: string): Promise<void> {
        expect((await store.load(id)).records).toEqual([]);
      }

      it('refuses an empty aggregate id', async () => {
        const { store } = await open();
        await expectValidationError(store.save('', [record(1)]), 'aggregateId');
        await expectValidationError(store.load(''), 'aggregateId');
        await expectValidationError(store.loadTail('', 1), 'aggregateId');
      });

      it('refuses an aggregate id over 2,048 bytes of UTF-8', async () => {
        const { store } = await open();
        await expectValidationError(store.save('é'.repeat(1025), [record(1)]), 'aggregateId');
        const id = `${unique('long')}-`.padEnd(2048, 'x');
        await store.save(id, [record(1)]);
        expect(versionsOf(await store.load(id))).toEqual([1]);
      });

      it('refuses an aggregate id that is not well-formed Unicode', async () => {
        const { store } = await open();
        await expectValidationError(store.save(`${unique('lone')}\ud800`, [record(1)]), 'aggregateId');
      });

      it('refuses a loadTail count that is not a number', async () => {
        const { store } = await open();
        await expectValidationError(store.loadTail(unique('n'), Number.NaN), 'n');
        await expectValidationError(store.loadTail(unique('n'), '3' as unknown as number), 'n');
      });

      it.each([
        ['zero', 0],
        ['negative', -1],
        ['fractional', 1.5],
        ['beyond MAX_SAFE_INTEGER', Number.MAX_SAFE_INTEGER + 1],
        ['NaN', Number.NaN],
      ])('refuses a %s version, writing none of the call', async (_label, version) => {
        const { store } = await open();
        const id = unique('bad-version');
        await expectValidationError(store.save(id, [record(1), record(version)]), 'records[1].version');
        await expectNothingWritten(store, id);
      });

      it('accepts MAX_SAFE_INTEGER as a version', async () => {
        const { store } = await open();
        const id = unique('max-version');
        await store.save(id, [record(Number.MAX_SAFE_INTEGER)]);
        expect(versionsOf(await store.load(id))).toEqual([Number.MAX_SAFE_INTEGER]);
      });

      it('refuses duplicate versions inside one call', async () => {
        const { store } = await open();
        const id = unique('dup');
        const err = await expectValidationError(store.save(id, [record(1), record(2), record(1)]), 'records[2].version');
        expect(isConflict(err)).toBe(false);
        await expectNothingWritten(store, id);
      });

      it('refuses a negative or fractional ttl', async () => {
        const { store } = await open();
        const id = unique('bad-ttl');
        await expectValidationError(store.save(id, [record(1), record(2, 'x', -5)]), 'records[1].ttl');
        await expectValidationError(store.save(id, [record(1, 'x', 1.5)]), 'records[0].ttl');
        await expectNothingWritten(store, id);
      });

      it('refuses an expiry further ahead than Cosmos DB’s largest item ttl, 2^31-1 s (found by the property tests)', async () => {
        const { store } = await open();
        const id = unique('far-ttl');
        const limit = 2 ** 31 - 1;
        await expectValidationError(store.save(id, [record(1), record(2, 'x', nowSeconds() + limit + 60)]), 'records[1].ttl');
        await expectValidationError(store.save(id, [record(1, 'x', Number.MAX_SAFE_INTEGER)]), 'records[0].ttl');
        await expectNothingWritten(store, id);
        const farButFine = nowSeconds() + limit - 60;
        await store.save(id, [record(1, 'x', farButFine)]);
        expect((await store.load(id)).records.map((r) => r.ttl)).toEqual([farButFine]);
      });

      it('refuses a store-level eventTtlSeconds over 2^31-1 when the store is built (found by the property tests)', async () => {
        const err = await rejectionOf(Promise.resolve().then(() => open({ eventTtlSeconds: 2 ** 31 })));
        expect(err).toBeInstanceOf(ValidationError);
        expect((err as ValidationError).field).toBe('eventTtlSeconds');
        await expect(Promise.resolve().then(() => open({ eventTtlSeconds: 2 ** 31 - 1 }))).resolves.toBeDefined();
      });

      it('refuses data that would make a document over the 2 MB item limit', async () => {
        const { store } = await open();
        const id = unique('too-big');
        const huge = new Uint8Array(2 * MiB + 1);
        await expectValidationError(store.save(id, [record(1), { version: 2, data: huge }]), 'records[1].data');
        // Base64 grows data by a third: 1.6 MiB of bytes is already too much.
        await expectValidationError(store.save(id, [{ version: 1, data: new Uint8Array(Math.floor(1.6 * MiB)) }]), 'records[0].data');
        await expectNothingWritten(store, id);
      });

      it('refuses data that is not a Uint8Array', async () => {
        const { store } = await open();
        const id = unique('bad-data');
        const bad = { version: 1, data: 'text' } as unknown as EventRecord;
        await expectValidationError(store.save(id, [bad]), 'records[0].data');
        await expectNothingWritten(store, id);
      });

      it('refuses a hole in a sparse records array (found by the property tests: it used to throw a TypeError)', async () => {
        const { store } = await open();
        const id = unique('sparse');
        const sparse: EventRecord[] = [record(1)];
        sparse[2] = record(3);
        await expectValidationError(store.save(id, sparse), 'records[1]');
        await expectNothingWritten(store, id);
      });
    });

    describe('opaque store: put, get, delete', () => {
      it('round-trips a document with version, t and secondary indexes', async () => {
        const { opaque } = await open();
        const pk = unique('pk');
        const t = nowSeconds() + 3600;
        const body = Uint8Array.from(range(0, 255));
        await opaque.put({ pk, sk: 'state', body, version: 7, t, gsi: { 1: { pk: 'g1', sk: 's1' }, 20: { pk: 'g20', sk: 's20' } } });
        const got = await opaque.get(pk, 'state');
        expect(got).toMatchObject({ pk, sk: 'state', version: 7, t, gsi: { 1: { pk: 'g1', sk: 's1' }, 20: { pk: 'g20', sk: 's20' } } });
        expect(Object.keys(got.gsi ?? {}).sort()).toEqual(['1', '20']);
        expect(sameBytes(got.body, body)).toBe(true);
      });

      it('leaves version, t and gsi out when they are not set', async () => {
        const { opaque } = await open();
        const pk = unique('pk');
        await opaque.put({ pk, sk: 'bare', body: new Uint8Array(0), version: 0, t: 0 });
        const got = await opaque.get(pk, 'bare');
        expect(got.version ?? 0).toBe(0);
        expect(got.t ?? 0).toBe(0);
        expect(got.gsi).toBeUndefined();
        expect(got.body.byteLength).toBe(0);
      });

      it('replaces the document at the same keys', async () => {
        const { opaque } = await open();
        const pk = unique('pk');
        await opaque.put({ ...doc(pk, 'k'), version: 1, gsi: { 2: { pk: 'old', sk: 'x' } } });
        await opaque.put({ pk, sk: 'k', body: text('new'), version: 2 });
        const got = await opaque.get(pk, 'k');
        expect(got.version).toBe(2);
        expect(decoder.decode(got.body)).toBe('new');
        expect(got.gsi).toBeUndefined();
      });

      it('keeps sort keys apart that differ only in characters Cosmos forbids in ids', async () => {
        const { opaque } = await open();
        const pk = unique('pk');
        const sks = ['a/b', 'a%2Fb', 'a\\b', 'a?b', 'a#b', 'a%b', 'a%25b', 'a b é'];
        for (const sk of sks) await opaque.put(doc(pk, sk));
        for (const sk of sks) {
          const got = await opaque.get(pk, sk);
          expect(got.sk).toBe(sk);
          expect(decoder.decode(got.body)).toBe(`${pk}|${sk}`);
        }
        expect((await opaque.query({ pk })).items.map((d) => d.sk)).toEqual([...sks].sort());
      });

      it('throws NotFoundError for a missing document', async () => {
        const { opaque } = await open();
        const err = await rejectionOf(opaque.get(unique('pk'), 'nothing'));
        expect(err).toBeInstanceOf(NotFoundError);
        expect(err).toBeInstanceOf(EventStoreError);
      });

      it('throws NotFoundError for an expired document', async () => {
        const { opaque } = await open();
        const pk = unique('pk');
        await opaque.put(doc(pk, 'old', { t: nowSeconds() - 10 }));
        await expect(opaque.get(pk, 'old')).rejects.toBeInstanceOf(NotFoundError);
      });

      it('deletes a document: get then throws NotFoundError', async () => {
        const { opaque } = await open();
        const pk = unique('pk');
        await opaque.put(doc(pk, 'a/doomed'));
        await opaque.put(doc(pk, 'kept'));
        await opaque.delete(pk, 'a/doomed');
        await expect(opaque.get(pk, 'a/doomed')).rejects.toBeInstanceOf(NotFoundError);
        await expect(opaque.get(pk, 'kept')).resolves.toMatchObject({ sk: 'kept' });
      });

      it('deleting a missing document succeeds', async () => {
        const { opaque } = await open();
        await expect(opaque.delete(unique('pk'), 'never-there')).resolves.toBeUndefined();
      });
    });

    describe('opaque store: secondary-index slots', () => {
      it('applies the NA rule: pk with empty sk stores sk "NA"; sk alone is kept, also beside pk "NA"', async () => {
        const { opaque } = await open();
        const pk = unique('pk');
        await opaque.put(
          doc(pk, 'slots', {
            gsi: {
              1: { pk: 'P1', sk: '' },
              2: { pk: '', sk: 'S2' },
              3: { pk: 'NA', sk: 'S3' },
              4: { pk: 'P4', sk: 'S4' },
              5: { pk: '', sk: 'NA' },
              6: {},
              7: { pk: 'P7' },
              8: { sk: 'S8' },
              9: { pk: '', sk: '' },
            },
          }),
        );
        const { gsi } = await opaque.get(pk, 'slots');
        expect(gsi).toEqual({
          1: { pk: 'P1', sk: 'NA' },
          2: { sk: 'S2' },
          3: { sk: 'S3' },
          4: { pk: 'P4', sk: 'S4' },
          7: { pk: 'P7', sk: 'NA' },
          8: { sk: 'S8' },
        });
      });

      it.each([
        ['0', { 0: { pk: 'x', sk: 'y' } }],
        ['21', { 21: { pk: 'x', sk: 'y' } }],
        ['1.5', { 1.5: { pk: 'x', sk: 'y' } }],
        ['01', { '01': { pk: 'x', sk: 'y' } }],
        [' 2', { ' 2': { pk: 'x', sk: 'y' } }],
      ])('refuses slot %j', async (slot, gsi) => {
        const { opaque } = await open();
        const pk = unique('pk');
        await expectValidationError(opaque.put(doc(pk, 'k', { gsi: gsi as GsiSlots })), `gsi.${slot}`);
        await expect(opaque.get(pk, 'k')).rejects.toBeInstanceOf(NotFoundError);
      });
    });

    describe('opaque store: query', () => {
      const sortKeys = ['c', 'ba', 'a', 'bb', 'b']; // put out of order on purpose

      async function seedMainKey(opaque: OpaqueStore): Promise<string> {
        const pk = unique('q');
        const other = `${pk}-other`;
        for (const sk of sortKeys) {
          await opaque.put(doc(pk, sk));
          await opaque.put(doc(other, sk)); // same sort keys in a neighbouring partition
        }
        return pk;
      }

      it('on index 0 returns the partition only, ascending by sk', async () => {
        const { opaque } = await open();
        const pk = await seedMainKey(opaque);
        const { items, continuationToken } = await opaque.query({ pk });
        expect(items.map((d) => d.sk)).toEqual(['a', 'b', 'ba', 'bb', 'c']);
        expect(items.every((d) => d.pk === pk)).toBe(true);
        expect(decoder.decode(items[0].body)).toBe(`${pk}|a`);
        expect(continuationToken).toBeUndefined();
        expect(await opaque.query({ index: 0, pk })).toEqual({ items });
      });

      it.each<[string, SortCondition, string[]]>([
        ['=', { op: '=', value: 'b' }, ['b']],
        ['<', { op: '<', value: 'b' }, ['a']],
        ['<=', { op: '<=', value: 'b' }, ['a', 'b']],
        ['>', { op: '>', value: 'b' }, ['ba', 'bb', 'c']],
        ['>=', { op: '>=', value: 'ba' }, ['ba', 'bb', 'c']],
        ['between', { op: 'between', value: 'b', value2: 'bb' }, ['b', 'ba', 'bb']],
        ['begins_with', { op: 'begins_with', value: 'b' }, ['b', 'ba', 'bb']],
      ])('on index 0 with sk %s', async (_op, sk, expected) => {
        const { opaque } = await open();
        const pk = await seedMainKey(opaque);
        const { items } = await opaque.query({ pk, sk });
        expect(items.map((d) => d.sk)).toEqual(expected);
        expect(items.every((d) => d.pk === pk)).toBe(true);
      });

      it('gives no items for an unknown partition', async () => {
        const { opaque } = await open();
        await expect(opaque.query({ pk: unique('empty') })).resolves.toEqual({ items: [] });
      });

      it('on a secondary slot spans partitions, ascending by that slot’s sk', async () => {
        const { opaque } = await open();
        const gsiPk = unique('tenant');
        const base = unique('p');
        const placed = [
          ['p3', 'k', '2024-03'],
          ['p1', 'k', '2024-01'],
          ['p2', 'k', '2024-02'],
          ['p1', 'other', '2024-05'],
          ['p4', 'k', '2023-12'],
        ];
        for (const [p, sk, when] of placed) {
          await opaque.put(doc(`${base}-${p}`, sk, { gsi: { 3: { pk: gsiPk, sk: when } } }));
        }
        await opaque.put(doc(`${base}-p5`, 'k', { gsi: { 3: { pk: `${gsiPk}-else`, sk: '2024-04' } } }));
        await opaque.put(doc(`${base}-p6`, 'k', { gsi: { 4: { pk: gsiPk, sk: '2024-04' } } }));

        const { items } = await opaque.query({ index: 3, pk: gsiPk });
        expect(items.map((d) => d.gsi?.[3]?.sk)).toEqual(['2023-12', '2024-01', '2024-02', '2024-03', '2024-05']);
        expect(items.map((d) => `${d.pk}/${d.sk}`)).toEqual(
          ['p4/k', 'p1/k', 'p2/k', 'p3/k', 'p1/other'].map((s) => `${base}-${s}`),
        );
        const since = await opaque.query({ index: 3, pk: gsiPk, sk: { op: 'between', value: '2024-01', value2: '2024-02' } });
        expect(since.items.map((d) => d.gsi?.[3]?.sk)).toEqual(['2024-01', '2024-02']);
        const prefix = await opaque.query({ index: 3, pk: gsiPk, sk: { op: 'begins_with', value: '2024' } });
        expect(prefix.items).toHaveLength(4);
      });

      it('finds a slot whose sk was stored as "NA"', async () => {
        const { opaque } = await open();
        const gsiPk = unique('na');
        await opaque.put(doc(unique('p'), 'k', { gsi: { 20: { pk: gsiPk } } }));
        const { items } = await opaque.query({ index: 20, pk: gsiPk, sk: { op: '=', value: 'NA' } });
        expect(items).toHaveLength(1);
        expect(items[0].gsi?.[20]).toEqual({ pk: gsiPk, sk: 'NA' });
      });

      async function pages(opaque: OpaqueStore, query: OpaqueQuery): Promise<OpaqueData[][]> {
        const seen: OpaqueData[][] = [];
        let continuationToken: string | undefined;
        do {
          const page = await opaque.query({ ...query, continuationToken });
          expect(page.items.length).toBeLessThanOrEqual(query.limit ?? Infinity);
          seen.push(page.items);
          continuationToken = page.continuationToken;
          if (seen.length > 50) throw new Error('pagination does not end');
        } while (continuationToken !== undefined);
        return seen;
      }

      it('paginates index 0 with limit and continuationToken, visiting every item once, in order', async () => {
        const { opaque } = await open();
        const pk = unique('pages');
        const sks = range(1, 7).map((n) => `item-${String(n).padStart(2, '0')}`);
        for (const sk of [...sks].reverse()) await opaque.put(doc(pk, sk));
        await opaque.put(doc(`${pk}-other`, 'item-00'));
        const seen = await pages(opaque, { pk, limit: 3 });
        expect(seen.length).toBeGreaterThanOrEqual(3);
        expect(seen.flat().map((d) => d.sk)).toEqual(sks);
        const filtered = await pages(opaque, { pk, limit: 2, sk: { op: '>', value: 'item-02' } });
        expect(filtered.flat().map((d) => d.sk)).toEqual(sks.slice(2));
      });

      it('paginates a secondary slot across partitions, visiting every item once, in order', async () => {
        const { opaque } = await open();
        const gsiPk = unique('gpages');
        const when = range(1, 7).map((n) => `2024-${String(n).padStart(2, '0')}`);
        for (const [i, sk] of [...when].reverse().entries()) {
          await opaque.put(doc(unique(`p${i}`), 'k', { gsi: { 5: { pk: gsiPk, sk } } }));
        }
        const seen = await pages(opaque, { index: 5, pk: gsiPk, limit: 2 });
        expect(seen.flat().map((d) => d.gsi?.[5]?.sk)).toEqual(when);
      });

      it('paginates through runs of equal sort keys (the "NA" of slots without one) without loss or repeat', async () => {
        const { opaque } = await open();
        const gsiPk = unique('ties');
        const keys: string[] = [];
        // Seven share the sort key "NA", two come after it, one before.
        for (const [i, sk] of ['', '', 'B', '', '', '', 'A', '', '', 'C'].entries()) {
          const pk = unique(`t${i}`);
          keys.push(pk);
          await opaque.put(doc(pk, 'k', { gsi: { 4: { pk: gsiPk, sk } } }));
        }
        for (const limit of [1, 2, 3, 7, 10, 11]) {
          const seen = (await pages(opaque, { index: 4, pk: gsiPk, limit })).flat();
          expect(seen.map((d) => d.pk).sort()).toEqual([...keys].sort());
          expect(seen.map((d) => d.gsi?.[4]?.sk)).toEqual(['A', 'B', 'C', ...Array(7).fill('NA')]);
        }
      });

      it('gives no continuation token when the last page is exactly full', async () => {
        const { opaque } = await open();
        const pk = unique('full');
        for (const sk of ['a', 'b', 'c', 'd']) await opaque.put(doc(pk, sk));
        const first = await opaque.query({ pk, limit: 2 });
        expect(first.items.map((d) => d.sk)).toEqual(['a', 'b']);
        const second = await opaque.query({ pk, limit: 2, continuationToken: first.continuationToken });
        expect(second.items.map((d) => d.sk)).toEqual(['c', 'd']);
        expect(second.continuationToken).toBeUndefined();
      });

      it('never returns expired documents', async () => {
        const { opaque } = await open();
        const pk = unique('expired');
        const gsiPk = unique('expired-gsi');
        const past = nowSeconds() - 30;
        const future = nowSeconds() + 3600;
        await opaque.put(doc(pk, 'a', { t: future, gsi: { 2: { pk: gsiPk, sk: 'a' } } }));
        await opaque.put(doc(pk, 'b', { t: past, gsi: { 2: { pk: gsiPk, sk: 'b' } } }));
        await opaque.put(doc(pk, 'c', { gsi: { 2: { pk: gsiPk, sk: 'c' } } }));
        expect((await opaque.query({ pk })).items.map((d) => d.sk)).toEqual(['a', 'c']);
        expect((await opaque.query({ pk, sk: { op: '=', value: 'b' } })).items).toEqual([]);
        expect((await opaque.query({ index: 2, pk: gsiPk })).items.map((d) => d.sk)).toEqual(['a', 'c']);
        const paged = await pages(opaque, { pk, limit: 1 });
        expect(paged.flat().map((d) => d.sk)).toEqual(['a', 'c']);
      });
    });

    describe('opaque store: validation', () => {
      it.each([-1, 21, 1.5])('refuses query index %s', async (index) => {
        const { opaque } = await open();
        await expectValidationError(opaque.query({ index, pk: unique('pk') }), 'index');
      });

      it('refuses empty keys on put, get, delete and query', async () => {
        const { opaque } = await open();
        const pk = unique('pk');
        await expectValidationError(opaque.put(doc('', 'k')), 'pk');
        await expectValidationError(opaque.put(doc(pk, '')), 'sk');
        await expectValidationError(opaque.get('', 'k'), 'pk');
        await expectValidationError(opaque.get(pk, ''), 'sk');
        await expectValidationError(opaque.delete('', 'k'), 'pk');
        await expectValidationError(opaque.delete(pk, ''), 'sk');
        await expectValidationError(opaque.query({ pk: '' }), 'pk');
        await expectValidationError(opaque.query({ index: 4, pk: '' }), 'pk');
        expect((await opaque.query({ pk })).items).toEqual([]);
      });

      it('refuses a malformed sort condition or limit', async () => {
        const { opaque } = await open();
        const pk = unique('pk');
        await expectValidationError(opaque.query({ pk, sk: { op: 'between', value: 'a' } }), 'sk.value2');
        await expectValidationError(opaque.query({ pk, sk: { op: 'like' as SortCondition['op'], value: 'a' } }), 'sk.op');
        await expectValidationError(opaque.query({ pk, limit: 0 }), 'limit');
        await expectValidationError(opaque.query({ pk, limit: 1.5 }), 'limit');
      });

      it('refuses a continuation token it did not issue', async () => {
        const { opaque } = await open();
        const pk = unique('pk');
        for (const sk of ['a', 'b', 'c']) await opaque.put(doc(pk, sk, { gsi: { 1: { pk, sk } } }));
        for (const index of [0, 1]) {
          const first = await opaque.query({ index, pk, limit: 1 });
          expect(first.continuationToken).toEqual(expect.any(String));
          for (const continuationToken of ['garbage', Buffer.from('{"x":1}').toString('base64url'), '{"token":null}']) {
            await expectValidationError(opaque.query({ index, pk, limit: 1, continuationToken }), 'continuationToken');
          }
          await expectValidationError(opaque.query({ index, pk, continuationToken: '' }), 'continuationToken');
        }
      });

      it('refuses a sort key whose document id would pass 1,023 bytes', async () => {
        const { opaque } = await open();
        const pk = unique('pk');
        await expectValidationError(opaque.put(doc(pk, 'x'.repeat(1024))), 'sk');
        // Each '/' becomes '%2F' in the id: 400 of them make 1,200 bytes.
        await expectValidationError(opaque.put(doc(pk, '/'.repeat(400))), 'sk');
        await expectValidationError(opaque.get(pk, 'x'.repeat(1024)), 'sk');
        await opaque.put(doc(pk, 'x'.repeat(1023)));
        expect((await opaque.get(pk, 'x'.repeat(1023))).sk).toHaveLength(1023);
      });

      it('refuses a sort key of only white space, which @azure/cosmos could write but never read or delete (found by the property tests)', async () => {
        const { opaque } = await open();
        const pk = unique('pk');
        for (const sk of [' ', '\t', '  \n', '\u3000']) {
          await expectValidationError(opaque.put(doc(pk, sk)), 'sk');
          await expectValidationError(opaque.get(pk, sk), 'sk');
          await expectValidationError(opaque.delete(pk, sk), 'sk');
        }
        await opaque.put(doc(pk, ' x '));
        expect((await opaque.get(pk, ' x ')).sk).toBe(' x ');
      });

      it('refuses the sort keys "." and "..", which a URL resolves away: a delete of ".." removed the container (found by the property tests)', async () => {
        const { opaque } = await open();
        const pk = unique('pk');
        await opaque.put(doc(pk, 'kept'));
        for (const sk of ['.', '..']) {
          await expectValidationError(opaque.put(doc(pk, sk)), 'sk');
          await expectValidationError(opaque.get(pk, sk), 'sk');
          await expectValidationError(opaque.delete(pk, sk), 'sk');
        }
        expect((await opaque.get(pk, 'kept')).sk).toBe('kept');
        for (const sk of ['...', './', '.a', 'a.']) {
          await opaque.put(doc(pk, sk));
          expect((await opaque.get(pk, sk)).sk).toBe(sk);
        }
      });

      it('refuses a negative t or version', async () => {
        const { opaque } = await open();
        const pk = unique('pk');
        await expectValidationError(opaque.put(doc(pk, 'k', { t: -1 })), 't');
        await expectValidationError(opaque.put(doc(pk, 'k', { version: -1 })), 'version');
        await expect(opaque.get(pk, 'k')).rejects.toBeInstanceOf(NotFoundError);
      });

      it('refuses a t further ahead than Cosmos DB’s largest item ttl, 2^31-1 s (found by the property tests)', async () => {
        const { opaque } = await open();
        const pk = unique('pk');
        await expectValidationError(opaque.put(doc(pk, 'k', { t: nowSeconds() + 2 ** 31 + 60 })), 't');
        await expect(opaque.get(pk, 'k')).rejects.toBeInstanceOf(NotFoundError);
      });

      it('refuses a body that would make a document over the 2 MB item limit', async () => {
        const { opaque } = await open();
        const pk = unique('pk');
        await expectValidationError(opaque.put({ pk, sk: 'big', body: new Uint8Array(Math.floor(1.6 * MiB)) }), 'body');
        await expect(opaque.get(pk, 'big')).rejects.toBeInstanceOf(NotFoundError);
      });
    });

    describe('saveAggregate', () => {
      it('stores the aggregate’s JSON (toJSON honoured) with its keys and version', async () => {
        const { store, opaque } = await open({ compressThreshold: 1_000_000 });
        const order = new Order(unique('o'), ['apple', 'pear'], 4);
        await store.saveAggregate(order);
        const got = await opaque.get(order.keys().pk, 'state');
        expect(got.version).toBe(4);
        expect(got.t ?? 0).toBe(0);
        expect(isGzip(got.body)).toBe(false);
        expect(decoder.decode(got.body)).toBe(JSON.stringify(order));
        expect(decodeAggregateBody(got.body)).toEqual({ orderId: order.id, lines: ['apple', 'pear'], lineCount: 2 });
      });

      it('stores a plain object’s data fields as JSON', async () => {
        const { store, opaque } = await open();
        const pk = unique('plain');
        const aggregate = { name: 'plain', n: 3, keys: () => ({ pk, sk: 'state' }) };
        await store.saveAggregate(aggregate);
        expect(decodeAggregateBody((await opaque.get(pk, 'state')).body)).toEqual({ name: 'plain', n: 3 });
      });

      it('gzips a body of at least compressThreshold bytes, and only then', async () => {
        const order = new Order(unique('o'), ['a', 'b', 'c']);
        const json = Buffer.from(JSON.stringify(order));
        const { store: atThreshold, opaque } = await open({ compressThreshold: json.length });
        await atThreshold.saveAggregate(order);
        const gzipped = (await opaque.get(order.keys().pk, 'state')).body;
        expect(isGzip(gzipped)).toBe(true);
        expect(decodeAggregateBody(gzipped)).toEqual(JSON.parse(json.toString()));

        const { store: aboveThreshold, opaque: opaque2 } = await open({ compressThreshold: json.length + 1 });
        await aboveThreshold.saveAggregate(order);
        const plain = (await opaque2.get(order.keys().pk, 'state')).body;
        expect(isGzip(plain)).toBe(false);
        expect(sameBytes(plain, json)).toBe(true);
      });

      it(`compresses at ${DEFAULT_COMPRESS_THRESHOLD} bytes by default`, async () => {
        const { store, opaque } = await open();
        const small = new Order(unique('small'), ['x']);
        const large = new Order(unique('large'), Array.from({ length: 40 }, (_, i) => `line ${i}`));
        expect(JSON.stringify(small).length).toBeLessThan(DEFAULT_COMPRESS_THRESHOLD);
        expect(JSON.stringify(large).length).toBeGreaterThanOrEqual(DEFAULT_COMPRESS_THRESHOLD);
        await store.saveAggregate(small);
        await store.saveAggregate(large);
        expect(isGzip((await opaque.get(small.keys().pk, 'state')).body)).toBe(false);
        const body = (await opaque.get(large.keys().pk, 'state')).body;
        expect(isGzip(body)).toBe(true);
        expect(decodeAggregateBody(body)).toEqual(large.toJSON());
      });

      it('sets t to now + ttlSeconds and stores the secondary-index slots of keys()', async () => {
        const { store, opaque } = await open();
        const tenant = unique('tenant');
        const order = new Order(unique('o'), ['a'], 2, 3600, { 1: { pk: tenant, sk: 'open' }, 2: { pk: tenant } });
        const before = nowSeconds();
        await store.saveAggregate(order);
        const after = nowSeconds();
        const got = await opaque.get(order.keys().pk, 'state');
        expect(got.t).toBeGreaterThanOrEqual(before + 3600);
        expect(got.t).toBeLessThanOrEqual(after + 3600);
        expect(got.gsi).toEqual({ 1: { pk: tenant, sk: 'open' }, 2: { pk: tenant, sk: 'NA' } });
        expect((await opaque.query({ index: 1, pk: tenant })).items.map((d) => d.pk)).toEqual([order.keys().pk]);
      });

      it('replaces the previous state of the same aggregate', async () => {
        const { store, opaque } = await open();
        const id = unique('o');
        await store.saveAggregate(new Order(id, ['a'], 1));
        await store.saveAggregate(new Order(id, ['a', 'b'], 2));
        const got = await opaque.get(`order#${id}`, 'state');
        expect(got.version).toBe(2);
        expect(decodeAggregateBody(got.body)).toMatchObject({ lineCount: 2 });
      });

      it('does not touch the event stream', async () => {
        const { store } = await open();
        const order = new Order(unique('o'), ['a'], 1);
        await store.saveAggregate(order);
        expect((await store.load(order.keys().pk)).records).toEqual([]);
        expect((await store.load(order.id)).records).toEqual([]);
      });

      it('refuses invalid keys or ttlSeconds before writing', async () => {
        const { store, opaque } = await open();
        const pk = unique('bad');
        await expectValidationError(store.saveAggregate({ keys: () => ({ pk: '', sk: 'state' }) }), 'pk');
        await expectValidationError(store.saveAggregate({ keys: () => ({ pk, sk: '' }) }), 'sk');
        await expectValidationError(store.saveAggregate({ keys: () => ({ pk, sk: 's', gsi: { 21: { pk: 'x' } } }) }), 'gsi.21');
        await expectValidationError(store.saveAggregate({ ttlSeconds: -1, keys: () => ({ pk, sk: 's' }) }), /ttlSeconds/);
        await expectValidationError(store.saveAggregate({ ttlSeconds: 2 ** 31, keys: () => ({ pk, sk: 's' }) }), /ttlSeconds/);
        await expect(opaque.get(pk, 's')).rejects.toBeInstanceOf(NotFoundError);
      });

      it('fails with a clear EventStoreError when the store has no opaque store', async () => {
        const { store } = await open({ withOpaqueStore: false });
        const err = await rejectionOf(store.saveAggregate(new Order(unique('o'), [])));
        expect(err).toBeInstanceOf(EventStoreError);
        expect(err).not.toBeInstanceOf(ValidationError);
        expect((err as Error).message).toMatch(/saveAggregate/);
        expect((err as Error).message).toMatch(/opaqueStore/);
      });
    });

    describe('conditional writes: putIfNewer, saveAggregate({ onlyIfNewer }), save({ atomic })', () => {
      it('putIfNewer writes when nothing is stored and when the stored version is lower', async () => {
        const { opaque } = await open();
        const pk = unique('newer');
        expect(await opaque.putIfNewer(doc(pk, 's', { version: 1, body: text('v1') }))).toBe(true);
        expect(await opaque.putIfNewer(doc(pk, 's', { version: 3, body: text('v3') }))).toBe(true);
        const got = await opaque.get(pk, 's');
        expect(got.version).toBe(3);
        expect(decoder.decode(got.body)).toBe('v3');
      });

      it('putIfNewer keeps a stored version that is the same or newer, and says so', async () => {
        const { opaque } = await open();
        const pk = unique('older');
        await opaque.put(doc(pk, 's', { version: 5, body: text('v5') }));
        expect(await opaque.putIfNewer(doc(pk, 's', { version: 4, body: text('v4') }))).toBe(false);
        expect(await opaque.putIfNewer(doc(pk, 's', { version: 5, body: text('other v5') }))).toBe(false);
        expect(await opaque.putIfNewer(doc(pk, 's', { body: text('unversioned') }))).toBe(false);
        const got = await opaque.get(pk, 's');
        expect(got.version).toBe(5);
        expect(decoder.decode(got.body)).toBe('v5');
      });

      it('putIfNewer under racing writers finishing out of order keeps the newest version', async () => {
        const { opaque } = await open();
        const pk = unique('race');
        // Newest first, all at once: the writers read, then write over each other's etags.
        const versions = range(1, 12).reverse();
        await Promise.all(versions.map((v) => opaque.putIfNewer(doc(pk, 's', { version: v, body: text(`v${v}`) }))));
        await Promise.all(range(1, 11).map((v) => opaque.putIfNewer(doc(pk, 's', { version: v, body: text(`late v${v}`) }))));
        const got = await opaque.get(pk, 's');
        expect(got.version).toBe(12);
        expect(decoder.decode(got.body)).toBe('v12');
      });

      it('putIfNewer validates like put and keeps the secondary-index slots', async () => {
        const { opaque } = await open();
        const pk = unique('slots');
        await expectValidationError(opaque.putIfNewer(doc(pk, '', { version: 1 })), 'sk');
        await expectValidationError(opaque.putIfNewer(doc(pk, 's', { version: -1 })), 'version');
        await opaque.putIfNewer(doc(pk, 's', { version: 1, gsi: { 3: { pk: `${pk}-g`, sk: 'a' } } }));
        expect((await opaque.query({ index: 3, pk: `${pk}-g` })).items.map((d) => d.version)).toEqual([1]);
      });

      it('saveAggregate with onlyIfNewer never replaces a newer materialized version', async () => {
        const { store, opaque } = await open();
        const id = unique('o');
        await store.saveAggregate(new Order(id, ['a', 'b'], 2), { onlyIfNewer: true });
        await store.saveAggregate(new Order(id, ['a'], 1), { onlyIfNewer: true });
        const got = await opaque.get(`order#${id}`, 'state');
        expect(got.version).toBe(2);
        expect(decodeAggregateBody(got.body)).toMatchObject({ lineCount: 2 });
        // Without the option, saveAggregate stays protosource's upsert.
        await store.saveAggregate(new Order(id, ['a'], 1));
        expect((await opaque.get(`order#${id}`, 'state')).version).toBe(1);
      });

      it('an atomic save takes what fits one batch and refuses more before writing anything', async () => {
        const { store } = await open();
        const id = unique('atomic');
        await store.save(id, range(1, 100).map((v) => record(v)), { atomic: true });
        await expectValidationError(store.save(id, range(101, 201).map((v) => record(v)), { atomic: true }), 'records');
        expect(versionsOf(await store.load(id))).toEqual(range(1, 100));
      });
    });

    describe('an already-aborted signal', () => {
      it('rejects save, load and loadTail, writing nothing', async () => {
        const { store } = await open();
        const id = unique('aborted');
        await store.save(id, [record(1)]);
        await expectAborted(store.save(id, [record(2)], abortedOptions()));
        await expectAborted(store.save(id, [], abortedOptions()));
        await expectAborted(store.load(id, abortedOptions()));
        await expectAborted(store.loadTail(id, 1, abortedOptions()));
        await expectAborted(store.loadTail(id, 0, abortedOptions()));
        expect(versionsOf(await store.load(id))).toEqual([1]);
      });

      it('rejects saveAggregate, writing nothing', async () => {
        const { store, opaque } = await open();
        const order = new Order(unique('o'), ['a'], 1);
        await expectAborted(store.saveAggregate(order, abortedOptions()));
        await expect(opaque.get(order.keys().pk, 'state')).rejects.toBeInstanceOf(NotFoundError);
      });

      it('rejects put, get, delete and query, writing nothing', async () => {
        const { opaque } = await open();
        const pk = unique('aborted');
        await opaque.put(doc(pk, 'kept'));
        await expectAborted(opaque.put(doc(pk, 'new'), abortedOptions()));
        await expectAborted(opaque.get(pk, 'kept', abortedOptions()));
        await expectAborted(opaque.delete(pk, 'kept', abortedOptions()));
        await expectAborted(opaque.query({ pk }, abortedOptions()));
        expect((await opaque.query({ pk })).items.map((d) => d.sk)).toEqual(['kept']);
      });
    });
  });
}
