import type {
  AggregateStore,
  EventRecord,
  History,
  Materializable,
  OpaqueStore,
  OperationOptions,
  ReadStreamOptions,
  SaveAggregateOptions,
  SaveOptions,
  SnapshotTailStore,
  StreamingStore,
} from './event-store.interfaces.js';
import { EventStoreError, ValidationError } from './event-store.errors.js';
import {
  chunkByLimits,
  fromEventDocument,
  nowSeconds,
  prepareEvents,
  validateRecords,
  type EventDocument,
  type PreparedEvent,
} from './event-documents.js';
import { materialize } from './aggregate-documents.js';
import { checkPartitionKey, checkSeconds, checkSignal, streamPageSize, tailCount } from './validation.js';
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
}

export const DEFAULT_COMPRESS_THRESHOLD = 300;

/** Resolved store options, checked once. */
export function resolveStoreOptions(
  options: EventStoreOptions,
): Required<Omit<EventStoreOptions, 'opaqueStore' | 'retries'>> {
  checkSeconds('eventTtlSeconds', options.eventTtlSeconds);
  resolveRetryOptions(options.retries);
  const compressThreshold = options.compressThreshold ?? DEFAULT_COMPRESS_THRESHOLD;
  if (!Number.isSafeInteger(compressThreshold) || compressThreshold < 0) {
    throw new ValidationError('compressThreshold', 'must be a non-negative integer number of bytes');
  }
  return { eventTtlSeconds: options.eventTtlSeconds ?? 0, compressThreshold };
}

/**
 * What every event store shares: input checks before any I/O, the split into all-or-nothing chunks, TTL
 * options and materialization. A store supplies how a chunk is written and how live records are read.
 */
export abstract class ChunkedEventStore implements SnapshotTailStore, StreamingStore, AggregateStore, TrackedAggregateStore {
  protected readonly eventTtlSeconds: number;
  private readonly compressThreshold: number;
  private readonly opaqueStore?: OpaqueStore;

  constructor(options: EventStoreOptions) {
    ({ eventTtlSeconds: this.eventTtlSeconds, compressThreshold: this.compressThreshold } = resolveStoreOptions(options));
    this.opaqueStore = options.opaqueStore;
  }

  /** Writes one chunk atomically: all of it, or nothing and an error (`ConcurrencyError` for a taken version). */
  protected abstract writeChunk(aggregateId: string, chunk: PreparedEvent[], options?: OperationOptions): Promise<void>;

  /** Live (unexpired) documents of a stream, ascending; with `last`, only the newest `last` of them. */
  protected abstract readLive(aggregateId: string, last: number | undefined, options?: OperationOptions): Promise<EventDocument[]>;

  /**
   * Live documents of a stream, ascending, in pages of at most `pageSize` fetched one at a time as the caller
   * iterates; each page resumes after the last version of the one before.
   */
  protected abstract readPages(aggregateId: string, pageSize: number, options?: OperationOptions): AsyncIterable<EventDocument[]>;

  async save(aggregateId: string, records: readonly EventRecord[], options?: SaveOptions): Promise<void> {
    checkSignal(options);
    validateRecords(aggregateId, records);
    if (records.length === 0) return;
    const chunks = chunkByLimits(prepareEvents(aggregateId, records, nowSeconds(), this.eventTtlSeconds));
    if (options?.atomic && chunks.length > 1) {
      throw new ValidationError(
        'records',
        `${records.length} records need ${chunks.length} transactional batches (at most 100 operations and 2 MB each); an atomic save takes one`,
      );
    }
    for (const chunk of chunks) {
      checkSignal(options);
      await this.writeChunk(aggregateId, chunk, options);
    }
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
