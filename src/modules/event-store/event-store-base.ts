import type {
  AggregateStore,
  DeleteStreamOptions,
  EventRecord,
  ExpectedVersion,
  History,
  LoadRangeOptions,
  ReadAllItem,
  ReadAllOptions,
  ReadAllStore,
  Materializable,
  OpaqueStore,
  OperationOptions,
  ReadStreamOptions,
  SaveAggregateOptions,
  StoreSaveOptions,
  SnapshotTailStore,
  StreamingStore,
  StreamLifecycleStore,
} from './event-store.interfaces.js';
import { EventStoreError, ExpectedVersionError, ValidationError } from './event-store.errors.js';
import {
  chunkByLimits,
  fromEventDocument,
  nowSeconds,
  prepareEvents,
  STREAM_DELETED_TYPE,
  validateRecords,
  type EventDocument,
  type PreparedEvent,
} from './event-documents.js';
import { materialize } from './aggregate-documents.js';
import { checkPartitionKey, checkSeconds, checkSignal, checkVersion, streamPageSize, tailCount } from './validation.js';
import { resolveRetryOptions, type StoreRetryOptions } from './transient-faults.js';
import { isTrackedOpaqueStore, type TrackedAggregateStore, type TrackedPut } from './tracked-opaque-store.js';

export interface EventStoreOptions {
  /** Where `saveAggregate` writes; without one it fails with a clear error. */
  opaqueStore?: OpaqueStore;
  /** Expiry given to records that carry none of their own; 0 or absent: never expire. */
  eventTtlSeconds?: number;
  /** Materialized bodies of at least this many bytes are gzip-compressed. Default 300. */
  compressThreshold?: number;
  /**
   * How the Cosmos DB store retries transient failures (408, 449, 503, timeouts, lost connections) of its
   * reads and batches. Default 5 attempts, waits from 100 ms doubling up to 2 s. The in-memory store has
   * nothing to retry and ignores it. The `opaqueStore` retries its own calls by its own option
   * (`CosmosOpaqueStore`'s `retries`; `EventStoreModule` gives both stores the same).
   */
  retries?: StoreRetryOptions;
  /**
   * `readAll` hands out only events whose commit second (`_ts`, whole seconds) ended at least this many
   * seconds ago: commits still arriving within a second (or a late one, by the server's clock) would else
   * sort before a position already handed out and be skipped by a resume from it. Default 2; it must cover
   * the clock difference between this process and Cosmos DB. 0 still holds back the current second.
   */
  readAllSettleSeconds?: number;
}

export const DEFAULT_COMPRESS_THRESHOLD = 300;

/** `readAllSettleSeconds` when not given. */
export const DEFAULT_READ_ALL_SETTLE_SECONDS = 2;

/** An event document as committed: with Cosmos DB's commit time `_ts` (epoch seconds). */
export type CommittedDocument = EventDocument & { _ts: number };

/**
 * What `removeDocuments` removes, and the first version kept (every stub says it). A removed event leaves a
 * stub `{ id, a, r }` under its id, so its version stays taken; other documents (the tip) are deleted.
 */
export interface Removal {
  remove: (doc: ListedDocument) => boolean;
  stubVersion: number;
  /** When the stub expires (epoch seconds); absent: never. An erasure's stub lives as long as its tombstone. */
  stubExpiry?: number;
  /** An event to create first, in the same atomic batch as the first deletes (the tombstone). */
  lead?: PreparedEvent;
}

/** A document of a stream's partition as `removeDocuments` lists it: events have a numeric `v`, stubs an `r`. */
export interface ListedDocument {
  id: string;
  v?: number;
  y?: string;
  t?: number;
  /** A stub's first version kept. */
  r?: number;
}

/** The stub a removed event leaves: no `v`, a numeric `r`. */
export function isStub(doc: ListedDocument): boolean {
  return typeof doc.v !== 'number' && typeof doc.r === 'number';
}

/** `readAll`'s options, checked: commit times in epoch seconds, `since` inclusive, `until` exclusive. */
export interface ReadAllFilter {
  types?: readonly string[];
  /** Stream ids start with it: `<aggregateType>/`. */
  prefix?: string;
  since?: number;
  until?: number;
  /** Resume after this document (the query starts at its second; the rest of that second is skipped). */
  after?: { ts: number; a: string; v: number };
}

// Stands for the read of version N in the first chunk when chunking a checked save.
const READ_CHECK = Object.freeze({ operationBytes: Buffer.byteLength('{"operationType":"Read","id":""}') + 20 });

/** The expected last version of a checked save (0: no stream), or undefined for no check. */
function expectedLast(expected: ExpectedVersion | undefined, records: readonly EventRecord[]): number | undefined {
  if (expected === undefined || expected === 'any') return undefined;
  const last = expected === 'no-stream' ? 0 : expected;
  if (typeof last !== 'number' || !Number.isSafeInteger(last) || last < 0) {
    throw new ValidationError('expectedVersion', `must be 'any', 'no-stream' or a non-negative safe integer, got ${String(expected)}`);
  }
  if (records.length > 0 && records[0].version !== last + 1) {
    throw new ValidationError(
      'records[0].version',
      `must be ${last + 1} after expectedVersion ${String(expected)}, got ${String(records[0].version)}`,
    );
  }
  return last;
}

function readAllFilter(options: ReadAllOptions): ReadAllFilter {
  const filter: ReadAllFilter = {};
  if (options.types !== undefined) {
    if (!Array.isArray(options.types) || options.types.some((t) => typeof t !== 'string' || t.length === 0)) {
      throw new ValidationError('types', 'must be an array of non-empty strings');
    }
    filter.types = [...new Set(options.types)];
  }
  if (options.aggregateType !== undefined) {
    checkPartitionKey('aggregateType', options.aggregateType);
    filter.prefix = `${options.aggregateType}/`;
  }
  const seconds = (field: string, date: unknown, round: (n: number) => number): number => {
    if (!(date instanceof Date) || Number.isNaN(date.getTime())) throw new ValidationError(field, 'must be a valid Date');
    return round(date.getTime() / 1000);
  };
  // Commit times are whole seconds: a bound inside a second takes that second in (since) or not (until).
  if (options.since !== undefined) filter.since = seconds('since', options.since, Math.floor);
  if (options.until !== undefined) filter.until = seconds('until', options.until, Math.ceil);
  if (options.after !== undefined) {
    filter.after = decodePosition(options.after);
    if (filter.since === undefined || filter.since < filter.after.ts) filter.since = filter.after.ts;
  }
  return filter;
}

function encodePosition(doc: CommittedDocument): string {
  return Buffer.from(JSON.stringify([doc._ts, doc.a, doc.v])).toString('base64url');
}

function decodePosition(position: unknown): { ts: number; a: string; v: number } {
  try {
    if (typeof position !== 'string') throw new Error('not a string');
    const [ts, a, v] = JSON.parse(Buffer.from(position, 'base64url').toString('utf8')) as unknown[];
    if (Number.isSafeInteger(ts) && typeof a === 'string' && Number.isSafeInteger(v)) return { ts: ts as number, a, v: v as number };
  } catch {
    // answered below
  }
  throw new ValidationError('after', 'must be a position readAll returned');
}

/** Resolved store options, checked once. */
export function resolveStoreOptions(
  options: EventStoreOptions,
): Required<Omit<EventStoreOptions, 'opaqueStore' | 'retries'>> {
  checkSeconds('eventTtlSeconds', options.eventTtlSeconds);
  checkSeconds('readAllSettleSeconds', options.readAllSettleSeconds);
  resolveRetryOptions(options.retries);
  const compressThreshold = options.compressThreshold ?? DEFAULT_COMPRESS_THRESHOLD;
  if (!Number.isSafeInteger(compressThreshold) || compressThreshold < 0) {
    throw new ValidationError('compressThreshold', 'must be a non-negative integer number of bytes');
  }
  return {
    eventTtlSeconds: options.eventTtlSeconds ?? 0,
    compressThreshold,
    readAllSettleSeconds: options.readAllSettleSeconds ?? DEFAULT_READ_ALL_SETTLE_SECONDS,
  };
}

/**
 * What every event store shares: input checks before any I/O, the split into all-or-nothing chunks, TTL
 * options and materialization. A store supplies how a chunk is written and how live records are read.
 */
export abstract class ChunkedEventStore
  implements SnapshotTailStore, StreamingStore, AggregateStore, StreamLifecycleStore, ReadAllStore, TrackedAggregateStore
{
  protected readonly eventTtlSeconds: number;
  private readonly compressThreshold: number;
  private readonly readAllSettleSeconds: number;
  private readonly opaqueStore?: OpaqueStore;

  constructor(options: EventStoreOptions) {
    ({
      eventTtlSeconds: this.eventTtlSeconds,
      compressThreshold: this.compressThreshold,
      readAllSettleSeconds: this.readAllSettleSeconds,
    } = resolveStoreOptions(options));
    this.opaqueStore = options.opaqueStore;
  }

  /**
   * Writes one chunk atomically: all of it, or nothing and an error (`ConcurrencyError` for a taken version).
   * With `expected` (the first chunk of a checked save), the same batch proves the stream's last version:
   * 0 = no stream (the create of version 1 does), N = document N exists (a read in the batch) and N+1 does
   * not (its create); a mismatch is an `ExpectedVersionError`.
   */
  protected abstract writeChunk(aggregateId: string, chunk: PreparedEvent[], options?: OperationOptions, expected?: number): Promise<void>;

  /** Live documents with `from <= v <= to`, ascending. */
  protected abstract readRange(aggregateId: string, from: number, to: number, options?: OperationOptions): Promise<EventDocument[]>;

  /** The stream's newest stored event document, expired or not; undefined for no stream. */
  protected abstract readLast(aggregateId: string, options?: OperationOptions): Promise<EventDocument | undefined>;

  /**
   * Lists every document of the stream's partition (events and not: the tip, stubs), asks `choose` which to
   * remove, and removes them: an event (or an older stub) is replaced by a stub `{ id, a, r: stubVersion }`
   * with no `v`, so its version stays taken; any other document is deleted. `choose` answering undefined:
   * nothing to do. A `lead` event
   * is created in the first batch; should it conflict (another writer appended), the partition is listed and
   * `choose` asked again.
   */
  protected abstract removeDocuments(
    aggregateId: string,
    choose: (docs: readonly ListedDocument[]) => Removal | undefined,
    options?: OperationOptions,
  ): Promise<void>;

  /**
   * Live event documents across streams matching `filter`, ascending by `_ts` (order within a second is
   * the base class's business), in pages of about `pageSize`.
   */
  protected abstract readAllPages(filter: ReadAllFilter, pageSize: number, options?: OperationOptions): AsyncIterable<CommittedDocument[]>;

  /** Live (unexpired) documents of a stream, ascending; with `last`, only the newest `last` of them. */
  protected abstract readLive(aggregateId: string, last: number | undefined, options?: OperationOptions): Promise<EventDocument[]>;

  /**
   * Live documents of a stream, ascending, in pages of at most `pageSize` fetched one at a time as the caller
   * iterates; each page resumes after the last version of the one before.
   */
  protected abstract readPages(aggregateId: string, pageSize: number, options?: OperationOptions): AsyncIterable<EventDocument[]>;

  async save(aggregateId: string, records: readonly EventRecord[], options?: StoreSaveOptions): Promise<void> {
    checkSignal(options);
    validateRecords(aggregateId, records);
    const expected = expectedLast(options?.expectedVersion, records);
    if (records.length === 0) return;
    const prepared = prepareEvents(aggregateId, records, nowSeconds(), this.eventTtlSeconds);
    // A read of version N in the first batch takes one of its operations.
    const chunks: PreparedEvent[][] =
      expected !== undefined && expected > 0
        ? chunkByLimits<PreparedEvent | typeof READ_CHECK>([READ_CHECK, ...prepared]).map((c) =>
            c.filter((item): item is PreparedEvent => item !== READ_CHECK),
          )
        : chunkByLimits(prepared);
    if (options?.atomic && chunks.length > 1) {
      throw new ValidationError(
        'records',
        `${records.length} records need ${chunks.length} transactional batches (at most 100 operations and 2 MB each` +
          `${expected !== undefined && expected > 0 ? ', the expected-version check taking one operation' : ''}); an atomic save takes one`,
      );
    }
    let check = expected;
    for (const chunk of chunks) {
      checkSignal(options);
      await this.writeChunk(aggregateId, chunk, options, check);
      check = undefined;
    }
  }

  /** The stream's last stored version (expired or not), 0 for none: what a mismatch reports as found. */
  protected async lastVersion(aggregateId: string, options?: OperationOptions): Promise<number> {
    return (await this.readLast(aggregateId, options))?.v ?? 0;
  }

  /** The mismatch of a checked save, with the version found by one read after the failure. */
  protected async mismatch(aggregateId: string, expected: number, options?: OperationOptions): Promise<ExpectedVersionError> {
    let found: number;
    try {
      found = await this.lastVersion(aggregateId, options);
    } catch {
      found = -1; // unknown: the read after the failure failed too
    }
    return new ExpectedVersionError(aggregateId, expected === 0 ? 'no-stream' : expected, found);
  }

  async loadRange(aggregateId: string, options?: LoadRangeOptions): Promise<History> {
    checkSignal(options);
    checkPartitionKey('aggregateId', aggregateId);
    const from = options?.fromVersion ?? 1;
    const to = options?.toVersion ?? Number.MAX_SAFE_INTEGER;
    checkVersion('fromVersion', from);
    checkVersion('toVersion', to);
    if (from > to) return { records: [] };
    return { records: (await this.readRange(aggregateId, from, to, options)).map(fromEventDocument) };
  }

  async truncateBefore(aggregateId: string, version: number, options?: OperationOptions): Promise<void> {
    checkSignal(options);
    checkPartitionKey('aggregateId', aggregateId);
    checkVersion('version', version);
    // One listing shows the last version too; the last event always stays, its version must remain readable.
    await this.removeDocuments(
      aggregateId,
      (docs) => {
        const last = Math.max(0, ...docs.flatMap((doc) => (typeof doc.v === 'number' ? [doc.v] : [])));
        const cut = Math.min(version, last);
        if (cut <= 1) return undefined;
        return { remove: (doc) => typeof doc.v === 'number' && doc.v < cut, stubVersion: cut };
      },
      options,
    );
  }

  async deleteStream(aggregateId: string, options?: DeleteStreamOptions): Promise<void> {
    checkSignal(options);
    checkPartitionKey('aggregateId', aggregateId);
    checkSeconds('tombstoneTtlSeconds', options?.tombstoneTtlSeconds);
    const ttlSeconds = options?.tombstoneTtlSeconds ?? 0;
    await this.removeDocuments(
      aggregateId,
      (docs) => {
        let last: ListedDocument | undefined;
        for (const doc of docs) if (typeof doc.v === 'number' && (!last || doc.v > last.v!)) last = doc;
        if (!last) return undefined; // no stream: nothing to erase, no tombstone
        const found = last;
        // Erased before, perhaps not to the end: finish it under the same tombstone.
        if (found.y === STREAM_DELETED_TYPE) {
          // Stubs already under this tombstone (same `r`, same expiry) are left as they are.
          const done = (doc: ListedDocument) => isStub(doc) && doc.r === found.v && (doc.t ?? 0) === (found.t ?? 0);
          return { remove: (doc) => doc.id !== found.id && !done(doc), stubVersion: found.v!, ...(found.t ? { stubExpiry: found.t } : {}) };
        }
        const now = nowSeconds();
        const record: EventRecord = { version: found.v! + 1, data: new Uint8Array(0), type: STREAM_DELETED_TYPE };
        if (ttlSeconds > 0) record.ttl = now + ttlSeconds;
        const [tombstone] = prepareEvents(aggregateId, [record], now, this.eventTtlSeconds);
        // Created in the first batch, atomically with the first deletes; a writer appending meanwhile makes
        // its create conflict, and the partition is listed again.
        // With an expiring tombstone the stub goes with it, and nothing of the stream is left after.
        return { remove: () => true, stubVersion: record.version, lead: tombstone, ...(tombstone.doc.t ? { stubExpiry: tombstone.doc.t } : {}) };
      },
      options,
    );
  }

  async *readAll(options: ReadAllOptions = {}): AsyncGenerator<ReadAllItem, void, undefined> {
    checkSignal(options);
    const filter = readAllFilter(options);
    // Never the seconds still open: an event committed later in one of them, with a stream id sorting
    // before a position handed out, would be skipped by a resume from that position.
    const settled = nowSeconds() - this.readAllSettleSeconds;
    if (filter.until === undefined || filter.until > settled) filter.until = settled;
    const pageSize = streamPageSize(options.pageSize);
    const after = filter.after;
    // Documents of one second, sorted by stream and version before they are handed out: `_ts` alone is
    // all a single-property ORDER BY (served by any index policy) can order by.
    let second: CommittedDocument[] = [];
    const flush = function* (): Generator<ReadAllItem> {
      second.sort((x, y) => (x.a < y.a ? -1 : x.a > y.a ? 1 : x.v - y.v));
      for (const doc of second) {
        if (after && doc._ts === after.ts && (doc.a < after.a || (doc.a === after.a && doc.v <= after.v))) continue;
        yield {
          aggregateId: doc.a,
          record: fromEventDocument(doc),
          committedAt: new Date(doc._ts * 1000),
          position: encodePosition(doc),
        };
      }
      second = [];
    };
    for await (const page of this.readAllPages(filter, pageSize, options)) {
      for (const doc of page) {
        if (second.length > 0 && second[0]._ts !== doc._ts) yield* flush();
        second.push(doc);
      }
      checkSignal(options);
    }
    yield* flush();
  }

  async load(aggregateId: string, options?: OperationOptions): Promise<History> {
    checkSignal(options);
    checkPartitionKey('aggregateId', aggregateId);
    return { records: (await this.readLive(aggregateId, undefined, options)).map(fromEventDocument) };
  }

  async loadTail(aggregateId: string, n: number, options?: OperationOptions): Promise<History> {
    checkSignal(options);
    checkPartitionKey('aggregateId', aggregateId);
    const count = tailCount(n);
    if (count === 0) return { records: [] };
    return { records: (await this.readLive(aggregateId, count, options)).map(fromEventDocument) };
  }

  async *readStream(aggregateId: string, options?: ReadStreamOptions): AsyncGenerator<EventRecord, void, undefined> {
    checkSignal(options);
    checkPartitionKey('aggregateId', aggregateId);
    const pageSize = streamPageSize(options?.pageSize);
    for await (const page of this.readPages(aggregateId, pageSize, options)) {
      for (const doc of page) yield fromEventDocument(doc);
      checkSignal(options);
    }
  }

  async saveAggregate(aggregate: Materializable, options?: SaveAggregateOptions): Promise<void> {
    checkSignal(options);
    if (!this.opaqueStore) {
      throw new EventStoreError(
        `saveAggregate needs the aggregates container: construct ${this.constructor.name} with { opaqueStore }`,
      );
    }
    const doc = materialize(aggregate, this.compressThreshold, nowSeconds());
    if (options?.onlyIfNewer) await this.opaqueStore.putIfNewer(doc, options);
    else await this.opaqueStore.put(doc, options);
  }

  /** `saveAggregate` with `onlyIfNewer`, in one request when `known` says what is stored (see `TrackedAggregateStore`). */
  async saveAggregateTracked(aggregate: Materializable, known: string | null | undefined, options?: OperationOptions): Promise<TrackedPut> {
    checkSignal(options);
    if (!this.opaqueStore) {
      throw new EventStoreError(`saveAggregate needs the aggregates container: construct ${this.constructor.name} with { opaqueStore }`);
    }
    const doc = materialize(aggregate, this.compressThreshold, nowSeconds());
    if (isTrackedOpaqueStore(this.opaqueStore)) return this.opaqueStore.putIfNewerTracked(doc, known, options);
    return { written: await this.opaqueStore.putIfNewer(doc, options) };
  }
}
