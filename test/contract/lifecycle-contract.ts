/*
 * The store's contract for what issue 16 adds at store level, written once and run against every
 * implementation (the in-memory store and the Cosmos DB store on the embedded server): expected versions,
 * event types, version ranges, truncation, erasure with a tombstone, and reads across streams. Also: every
 * event read skips documents of the events container that are not events (no numeric `v`, as the tip).
 */
import { randomUUID } from 'node:crypto';
import {
  ConcurrencyError,
  ExpectedVersionError,
  STREAM_DELETED_TYPE,
  ValidationError,
  type EventRecord,
  type History,
  type ReadAllItem,
  type ReadAllOptions,
  type ReadAllStore,
  type SnapshotTailStore,
  type StreamingStore,
  type StreamLifecycleStore,
} from '../../src/index.js';
import { jest } from '@jest/globals';
import { rejectionOf } from '../support/rejection.js';

export interface LifecycleSubject {
  store: SnapshotTailStore & StreamingStore & StreamLifecycleStore & ReadAllStore;
  /** Writes a document into the events container as it is, bypassing the store (Cosmos DB only). */
  putRaw?: (doc: Record<string, unknown>) => Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const unique = (label: string) => `${label}-${randomUUID()}`;
const versionsOf = (history: History) => history.records.map((r) => r.version);

function records(from: number, to: number, type?: string): EventRecord[] {
  return Array.from({ length: to - from + 1 }, (_, i) => ({
    version: from + i,
    data: encoder.encode(`event ${from + i}`),
    ...(type !== undefined && { type }),
  }));
}

async function drain<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

/** Runs `fn` with the clock `seconds` ahead, as the store sees it (commit times of the in-memory store too). */
async function later<T>(seconds: number, fn: () => Promise<T>): Promise<T> {
  const realNow = Date.now.bind(Date);
  const clock = jest.spyOn(Date, 'now').mockImplementation(() => realNow() + seconds * 1000);
  try {
    return await fn();
  } finally {
    clock.mockRestore();
  }
}

/** Past `readAllSettleSeconds` (default 2): `readAll` hands out commit seconds that are over. */
const SETTLED_SECONDS = 3;

/** Everything `readAll` yields once the seconds of the commits so far are over, as the store sees the clock. */
function settledReadAll(store: ReadAllStore, options?: ReadAllOptions): Promise<ReadAllItem[]> {
  return later(SETTLED_SECONDS, () => drain(store.readAll(options)));
}

export function describeLifecycleContract(name: string, factory: () => LifecycleSubject | Promise<LifecycleSubject>): void {
  describe(`stream lifecycle contract: ${name}`, () => {
    let subject: LifecycleSubject;
    beforeAll(async () => {
      subject = await factory();
    });

    describe('documents that are not events', () => {
      it('are skipped by load, loadTail, readStream, loadRange and readAll (the tip has no numeric v)', async () => {
        if (!subject.putRaw) return; // only a store over a container can hold such a document
        const { store } = subject;
        const id = unique('Tipped/t');
        await store.save(id, records(1, 3));
        await subject.putRaw({ id: 'tip', a: id, version: 3, state: 'e30=' });
        await subject.putRaw({ id: 'odd', a: id, v: 'not a number' });
        expect(versionsOf(await store.load(id))).toEqual([1, 2, 3]);
        expect(versionsOf(await store.loadTail(id, 2))).toEqual([2, 3]);
        expect(versionsOf(await store.loadTail(id, 1))).toEqual([3]);
        expect((await drain(store.readStream(id, { pageSize: 1 }))).map((r) => r.version)).toEqual([1, 2, 3]);
        expect(versionsOf(await store.loadRange(id))).toEqual([1, 2, 3]);
        const all = await settledReadAll(store, { aggregateType: id.split('/')[0] });
        expect(all.map((item) => [item.aggregateId, item.record.version])).toEqual([
          [id, 1],
          [id, 2],
          [id, 3],
        ]);
        // And a checked save counts versions, not documents.
        await store.save(id, records(4, 4), { expectedVersion: 3 });
        expect(versionsOf(await store.load(id))).toEqual([1, 2, 3, 4]);
      });
    });

    describe('expectedVersion', () => {
      it("'no-stream' writes a new stream and refuses an existing one, naming what it found", async () => {
        const { store } = subject;
        const id = unique('exp');
        await store.save(id, records(1, 2), { expectedVersion: 'no-stream' });
        const err = await rejectionOf(store.save(id, records(1, 1), { expectedVersion: 'no-stream' }));
        expect(err).toBeInstanceOf(ExpectedVersionError);
        expect(err).toBeInstanceOf(ConcurrencyError);
        expect(err).toMatchObject({ expected: 'no-stream', found: 2, aggregateId: id });
        expect((err as Error).message).toMatch(/expected no stream, found version 2/);
      });

      it('a number N writes when N is the last version, and refuses a stream that is behind or ahead', async () => {
        const { store } = subject;
        const id = unique('exp');
        await store.save(id, records(1, 3));
        await store.save(id, records(4, 5), { expectedVersion: 3 });
        expect(versionsOf(await store.load(id))).toEqual([1, 2, 3, 4, 5]);
        // Ahead of the caller: 4 exists, and so does 5.
        const behind = await rejectionOf(store.save(id, records(5, 5), { expectedVersion: 4 }));
        expect(behind).toMatchObject({ name: 'ExpectedVersionError', expected: 4, found: 5 });
        // Behind the caller: 7 does not exist.
        const ahead = await rejectionOf(store.save(id, records(8, 8), { expectedVersion: 7 }));
        expect(ahead).toMatchObject({ name: 'ExpectedVersionError', expected: 7, found: 5 });
        expect((ahead as Error).message).toMatch(/expected version 7, found version 5/);
        // Nothing of a refused save was written.
        expect(versionsOf(await store.load(id))).toEqual([1, 2, 3, 4, 5]);
      });

      it('a number on an unknown stream is a mismatch with found 0; 0 means no stream', async () => {
        const { store } = subject;
        const id = unique('exp');
        expect(await rejectionOf(store.save(id, records(3, 3), { expectedVersion: 2 }))).toMatchObject({ expected: 2, found: 0 });
        await store.save(id, records(1, 1), { expectedVersion: 0 });
        expect(versionsOf(await store.load(id))).toEqual([1]);
      });

      it("'any' (the default) keeps today's behaviour: only a taken version conflicts", async () => {
        const { store } = subject;
        const id = unique('exp');
        await store.save(id, records(1, 1), { expectedVersion: 'any' });
        await store.save(id, records(2, 2));
        const err = await rejectionOf(store.save(id, records(2, 2), { expectedVersion: 'any' }));
        expect(err).toBeInstanceOf(ConcurrencyError);
        expect(err).not.toBeInstanceOf(ExpectedVersionError);
      });

      it('lets exactly one of two writers expecting the same version win', async () => {
        const { store } = subject;
        const id = unique('exp');
        await store.save(id, records(1, 1));
        const outcomes = await Promise.allSettled([
          store.save(id, records(2, 3), { expectedVersion: 1 }),
          store.save(id, records(2, 2), { expectedVersion: 1 }),
        ]);
        expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
        const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
        expect(refused.reason).toBeInstanceOf(ExpectedVersionError);
      });

      it('checks in the first batch, where the read of the expected version takes one of the 100 operations', async () => {
        const { store } = subject;
        const id = unique('exp');
        await store.save(id, records(1, 1));
        await store.save(id, records(2, 100), { expectedVersion: 1, atomic: true });
        expect(await rejectionOf(store.save(id, records(101, 200), { expectedVersion: 100, atomic: true }))).toMatchObject({
          field: 'records',
          message: expect.stringMatching(/expected-version check/),
        });
        // Without atomic: two chunks, the first one checked.
        await store.save(id, records(101, 200), { expectedVersion: 100 });
        expect(versionsOf(await store.load(id))).toHaveLength(200);
        expect(await rejectionOf(store.save(id, records(200, 300), { expectedVersion: 199 }))).toMatchObject({ found: 200 });
        expect(versionsOf(await store.load(id))).toHaveLength(200);
      });

      it('refuses, before any request, records that do not continue the expected version, and a bad value', async () => {
        const { store } = subject;
        const id = unique('exp');
        expect(await rejectionOf(store.save(id, records(2, 2), { expectedVersion: 'no-stream' }))).toMatchObject({
          name: 'ValidationError',
          field: 'records[0].version',
        });
        expect(await rejectionOf(store.save(id, records(5, 5), { expectedVersion: 3 }))).toBeInstanceOf(ValidationError);
        for (const bad of [-1, 1.5, 'none', null]) {
          expect(await rejectionOf(store.save(id, records(1, 1), { expectedVersion: bad as never }))).toMatchObject({
            field: 'expectedVersion',
          });
        }
        expect((await store.load(id)).records).toEqual([]);
      });
    });

    describe('event types', () => {
      it('round-trip on every read, and records without one stay without', async () => {
        const { store } = subject;
        const id = unique('typed');
        await store.save(id, [...records(1, 1, 'OrderPlaced'), ...records(2, 2)]);
        const { records: loaded } = await store.load(id);
        expect(loaded[0].type).toBe('OrderPlaced');
        expect('type' in loaded[1]).toBe(false);
        expect((await store.loadTail(id, 2)).records[0].type).toBe('OrderPlaced');
        expect((await drain(store.readStream(id)))[0].type).toBe('OrderPlaced');
      });

      it('refuses an empty or oversized type before any request', async () => {
        const { store } = subject;
        const id = unique('typed');
        for (const type of ['', 'x'.repeat(257), 7]) {
          expect(await rejectionOf(store.save(id, [{ version: 1, data: new Uint8Array(0), type: type as string }]))).toMatchObject({
            field: 'records[0].type',
          });
        }
      });
    });

    describe('loadRange', () => {
      it('returns the records between both bounds, inclusive, ascending', async () => {
        const { store } = subject;
        const id = unique('range');
        await store.save(id, records(1, 10));
        expect(versionsOf(await store.loadRange(id, { fromVersion: 3, toVersion: 6 }))).toEqual([3, 4, 5, 6]);
        expect(versionsOf(await store.loadRange(id, { fromVersion: 9 }))).toEqual([9, 10]);
        expect(versionsOf(await store.loadRange(id, { toVersion: 2 }))).toEqual([1, 2]);
        expect(versionsOf(await store.loadRange(id, { fromVersion: 7, toVersion: 3 }))).toEqual([]);
        expect(versionsOf(await store.loadRange(unique('none')))).toEqual([]);
        expect(await rejectionOf(store.loadRange(id, { fromVersion: 0 }))).toMatchObject({ field: 'fromVersion' });
      });
    });

    describe('truncateBefore', () => {
      it('removes the events before a version; loads, tails, ranges and appends keep working', async () => {
        const { store } = subject;
        const id = unique('trunc');
        await store.save(id, records(1, 10));
        await store.truncateBefore(id, 8);
        expect(versionsOf(await store.load(id))).toEqual([8, 9, 10]);
        expect(versionsOf(await store.loadTail(id, 5))).toEqual([8, 9, 10]);
        expect(versionsOf(await store.loadRange(id, { toVersion: 8 }))).toEqual([8]);
        expect((await drain(store.readStream(id, { pageSize: 2 }))).map((r) => r.version)).toEqual([8, 9, 10]);
        await store.save(id, records(11, 11), { expectedVersion: 10 });
        expect(versionsOf(await store.load(id))).toEqual([8, 9, 10, 11]);
      });

      it("keeps the last event, and version 1 stays taken for a 'no-stream' save", async () => {
        const { store } = subject;
        const id = unique('trunc');
        await store.save(id, records(1, 4));
        await store.truncateBefore(id, 100);
        expect(versionsOf(await store.load(id))).toEqual([4]);
        expect(await rejectionOf(store.save(id, records(1, 1), { expectedVersion: 'no-stream' }))).toMatchObject({
          name: 'ExpectedVersionError',
          found: 4,
        });
        expect(await rejectionOf(store.save(id, records(1, 1)))).toBeInstanceOf(ConcurrencyError);
        await store.truncateBefore(unique('none'), 5); // nothing to do
      });

      it('keeps every removed version taken: no checked or unchecked save writes into them', async () => {
        const { store } = subject;
        const id = unique('trunc');
        await store.save(id, records(1, 5));
        await store.truncateBefore(id, 4);
        // Version 1 is a stub, not the last event: a checked save expecting it is a mismatch naming 5.
        expect(await rejectionOf(store.save(id, records(2, 2), { expectedVersion: 1 }))).toMatchObject({
          name: 'ExpectedVersionError',
          found: 5,
        });
        expect(await rejectionOf(store.save(id, records(3, 3), { expectedVersion: 2 }))).toMatchObject({ found: 5 });
        expect(await rejectionOf(store.save(id, records(2, 2)))).toBeInstanceOf(ConcurrencyError);
        expect(await rejectionOf(store.save(id, records(3, 3), { expectedVersion: 'any' }))).toBeInstanceOf(ConcurrencyError);
        expect(versionsOf(await store.load(id))).toEqual([4, 5]);
        expect(versionsOf(await store.loadRange(id))).toEqual([4, 5]);
        expect((await drain(store.readStream(id, { pageSize: 1 }))).map((r) => r.version)).toEqual([4, 5]);
        // Truncating again leaves the stubs as they are and goes on with the events.
        await store.save(id, records(6, 6), { expectedVersion: 5 });
        await store.truncateBefore(id, 6);
        expect(await rejectionOf(store.save(id, records(5, 5), { expectedVersion: 4 }))).toMatchObject({ found: 6 });
        expect(versionsOf(await store.load(id))).toEqual([6]);
      });

      it('removes more than one batch of 100', async () => {
        const { store } = subject;
        const id = unique('trunc');
        await store.save(id, records(1, 250));
        await store.truncateBefore(id, 240);
        expect(versionsOf(await store.load(id))).toEqual(Array.from({ length: 11 }, (_, i) => 240 + i));
      });
    });

    describe('deleteStream', () => {
      it('leaves only a tombstone event after the last version, which loads and readAll show', async () => {
        const { store } = subject;
        const id = unique('Erased/e');
        await store.save(id, records(1, 120, 'Named'));
        if (subject.putRaw) await subject.putRaw({ id: 'tip', a: id, version: 120, state: 'secret' });
        await store.deleteStream(id);
        const { records: left } = await store.load(id);
        expect(left).toEqual([{ version: 121, data: new Uint8Array(0), type: STREAM_DELETED_TYPE }]);
        const erased = await settledReadAll(store, { types: [STREAM_DELETED_TYPE], aggregateType: 'Erased' });
        expect(erased.map((item) => [item.aggregateId, item.record.version])).toContainEqual([id, 121]);
        expect(await settledReadAll(store, { types: ['Named'], aggregateType: 'Erased' })).toEqual([]);
      });

      it('is idempotent, leaves an unknown stream alone, and a later save continues after the tombstone', async () => {
        const { store } = subject;
        const id = unique('erase');
        await store.deleteStream(id);
        expect((await store.load(id)).records).toEqual([]);
        await store.save(id, records(1, 2));
        await store.deleteStream(id);
        await store.deleteStream(id);
        expect(versionsOf(await store.load(id))).toEqual([3]);
        expect(await rejectionOf(store.save(id, records(1, 1), { expectedVersion: 'no-stream' }))).toMatchObject({ found: 3 });
        await store.save(id, records(4, 4), { expectedVersion: 3 });
        expect(versionsOf(await store.load(id))).toEqual([3, 4]);
      });

      it('keeps every erased version taken: nothing is written back into an erased stream', async () => {
        const { store } = subject;
        const id = unique('erase');
        await store.save(id, records(1, 3));
        await store.deleteStream(id);
        expect(await rejectionOf(store.save(id, records(2, 2), { expectedVersion: 1 }))).toMatchObject({
          name: 'ExpectedVersionError',
          found: 4,
        });
        expect(await rejectionOf(store.save(id, records(3, 3), { expectedVersion: 2 }))).toMatchObject({ found: 4 });
        expect(await rejectionOf(store.save(id, records(2, 2)))).toBeInstanceOf(ConcurrencyError);
        expect((await store.load(id)).records).toEqual([{ version: 4, data: new Uint8Array(0), type: STREAM_DELETED_TYPE }]);
        // A truncated stream erased: the truncation's stubs stay taken under the tombstone too.
        const cut = unique('erase');
        await store.save(cut, records(1, 4));
        await store.truncateBefore(cut, 3);
        await store.deleteStream(cut);
        await store.deleteStream(cut);
        for (const version of [1, 2, 3]) {
          expect(await rejectionOf(store.save(cut, records(version + 1, version + 1), { expectedVersion: version }))).toMatchObject({ found: 5 });
        }
        expect(await rejectionOf(store.save(cut, records(2, 2)))).toBeInstanceOf(ConcurrencyError);
        expect(versionsOf(await store.load(cut))).toEqual([5]);
      });

      it('gives the tombstone an expiry when asked', async () => {
        const { store } = subject;
        const id = unique('erase');
        await store.save(id, records(1, 1));
        await store.deleteStream(id, { tombstoneTtlSeconds: 30 });
        expect((await store.load(id)).records[0].ttl).toBeGreaterThan(Math.floor(Date.now() / 1000));
        expect((await later(60, () => store.load(id))).records).toEqual([]);
      });
    });

    describe('readAll', () => {
      const type = unique('Type');

      async function seed(): Promise<{ kind: string; ids: string[] }> {
        const kind = unique('Kind');
        const ids = [`${kind}/b`, `${kind}/a`, `${kind}/c`];
        for (const [n, id] of ids.entries()) {
          await subject.store.save(id, [
            { version: 1, data: encoder.encode(`${id} 1`), type },
            { version: 2, data: encoder.encode(`${id} 2`), type: `${type}-other` },
            { version: 3, data: encoder.encode(`${id} 3`), ...(n === 0 && { type }) },
          ]);
        }
        return { kind, ids };
      }

      const keysOf = (items: ReadAllItem[]) => items.map((item) => `${item.aggregateId.split('/')[1]}@${item.record.version}`);

      it('reads across streams by type and aggregate type, ordered by commit time, stream and version', async () => {
        const { kind } = await seed();
        const items = await settledReadAll(subject.store, { types: [type], aggregateType: kind });
        // All three streams were written within a few seconds: commit seconds first, then stream id, then version.
        const sorted = [...items].sort(
          (x, y) =>
            x.committedAt.getTime() - y.committedAt.getTime() ||
            (x.aggregateId < y.aggregateId ? -1 : x.aggregateId > y.aggregateId ? 1 : x.record.version - y.record.version),
        );
        expect(items).toEqual(sorted);
        expect(keysOf(items).sort()).toEqual(['a@1', 'b@1', 'b@3', 'c@1']);
        expect(decoder.decode(items.find((i) => i.aggregateId.endsWith('/b') && i.record.version === 3)!.record.data)).toMatch(/ 3$/);
        for (const item of items) expect(item.committedAt.getTime()).toBeLessThanOrEqual(Date.now());
        const both = await settledReadAll(subject.store, { types: [type, `${type}-other`], aggregateType: kind });
        expect(both).toHaveLength(7);
        expect(await settledReadAll(subject.store, { aggregateType: kind })).toHaveLength(9);
      });

      it('resumes after any position without loss or repeat, page size aside', async () => {
        const { kind } = await seed();
        const options: ReadAllOptions = { aggregateType: kind, pageSize: 2 };
        const all = await settledReadAll(subject.store, options);
        expect(all).toHaveLength(9);
        for (const [i, item] of all.entries()) {
          const rest = await settledReadAll(subject.store, { ...options, after: item.position });
          expect(keysOf(rest)).toEqual(keysOf(all.slice(i + 1)));
        }
      });

      it('selects by commit time: since inclusive, until exclusive', async () => {
        const { kind } = await seed();
        const all = await settledReadAll(subject.store, { aggregateType: kind });
        const first = all[0].committedAt;
        expect(await settledReadAll(subject.store, { aggregateType: kind, until: first })).toEqual([]);
        expect(await settledReadAll(subject.store, { aggregateType: kind, since: first })).toHaveLength(9);
        expect(await settledReadAll(subject.store, { aggregateType: kind, since: new Date(Date.now() + 5_000) })).toEqual([]);
      });

      it('never yields expired events', async () => {
        const kind = unique('Kind');
        const id = `${kind}/x`;
        await subject.store.save(id, [
          { version: 1, data: new Uint8Array(0), type, ttl: Math.floor(Date.now() / 1000) + 30 },
          { version: 2, data: new Uint8Array(0), type },
        ]);
        const items = await later(60, () => drain(subject.store.readAll({ aggregateType: kind })));
        expect(items.map((i) => i.record.version)).toEqual([2]);
      });

      it('never hands out a second still open, so a commit later in it is not skipped by a resume', async () => {
        const kind = unique('Kind');
        await subject.store.save(`${kind}/b`, records(1, 1, type));
        // Read at once: b@1's second is still open (a@1 may yet be committed in it), so nothing is handed out.
        expect(await drain(subject.store.readAll({ aggregateType: kind }))).toEqual([]);
        await subject.store.save(`${kind}/a`, records(1, 1, type));
        expect(await drain(subject.store.readAll({ aggregateType: kind }))).toEqual([]);
        // Once settled, both, and a resume after the first position yields the second.
        const all = await settledReadAll(subject.store, { aggregateType: kind });
        expect(keysOf(all).sort()).toEqual(['a@1', 'b@1']);
        expect(keysOf(await settledReadAll(subject.store, { aggregateType: kind, after: all[0].position }))).toEqual(keysOf(all.slice(1)));
      });

      it('refuses bad filters and positions on the first iteration', async () => {
        for (const options of [
          { types: [''] },
          { since: new Date('nope') },
          { after: 'not a position' },
          { aggregateType: '' },
          { pageSize: 0 },
        ] as ReadAllOptions[]) {
          expect(await rejectionOf(drain(subject.store.readAll(options)))).toBeInstanceOf(ValidationError);
        }
      });
    });
  });
}
