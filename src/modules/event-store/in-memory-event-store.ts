import type {
  AggregateStore,
  EventRecord,
  History,
  Materializable,
  OpaqueStore,
  OperationOptions,
  SnapshotTailStore,
} from './event-store.interfaces.js';
import { ConcurrencyError } from './event-store.errors.js';
import {
  chunkByLimits,
  fromEventDocument,
  nowSeconds,
  prepareEvents,
  toEventDocument,
  validateRecords,
  type EventDocument,
} from './event-documents.js';
import { isExpired, saveMaterialized } from './aggregate-documents.js';
import { checkPartitionKey, checkSignal, tailCount } from './validation.js';
import { resolveStoreOptions, type EventStoreOptions } from './cosmos-event-store.js';

/**
 * The event store's contract in memory: same validation, same chunking into all-or-nothing batches of
 * 100, same conflicts, ordering, tail and TTL filtering as `CosmosEventStore`. For unit tests.
 *
 * @example
 * const moduleRef = await Test.createTestingModule({ imports: [AppModule] })
 *   .overrideProvider(STORE).useValue(new InMemoryEventStore())
 *   .compile();
 */
export class InMemoryEventStore implements SnapshotTailStore, AggregateStore {
  private readonly streams = new Map<string, Map<number, EventDocument>>();
  private readonly eventTtlSeconds: number;
  private readonly compressThreshold: number;
  private readonly opaqueStore?: OpaqueStore;

  constructor(options: EventStoreOptions = {}) {
    ({ eventTtlSeconds: this.eventTtlSeconds, compressThreshold: this.compressThreshold } = resolveStoreOptions(options));
    this.opaqueStore = options.opaqueStore;
  }

  async save(aggregateId: string, records: readonly EventRecord[], options?: OperationOptions): Promise<void> {
    checkSignal(options);
    validateRecords(aggregateId, records);
    if (records.length === 0) return;
    for (const chunk of chunkByLimits(prepareEvents(aggregateId, records, nowSeconds(), this.eventTtlSeconds))) {
      await Promise.resolve(); // chunks are separate requests: other callers may interleave between them
      checkSignal(options);
      const stream = this.streams.get(aggregateId) ?? new Map<number, EventDocument>();
      // A Cosmos DB batch stops at its first failing operation (the rest answer 424): name that one only.
      const conflict = chunk.find(({ record }) => stream.has(record.version));
      if (conflict) throw new ConcurrencyError(aggregateId, [conflict.record.version]);
      const now = nowSeconds();
      for (const { record } of chunk) stream.set(record.version, toEventDocument(aggregateId, record, now, this.eventTtlSeconds));
      this.streams.set(aggregateId, stream);
    }
  }

  async load(aggregateId: string, options?: OperationOptions): Promise<History> {
    checkSignal(options);
    checkPartitionKey('aggregateId', aggregateId);
    return { records: this.live(aggregateId).map(fromEventDocument) };
  }

  async loadTail(aggregateId: string, n: number, options?: OperationOptions): Promise<History> {
    checkSignal(options);
    checkPartitionKey('aggregateId', aggregateId);
    const count = tailCount(n);
    if (count === 0) return { records: [] };
    const live = this.live(aggregateId);
    return { records: live.slice(Math.max(0, live.length - count)).map(fromEventDocument) };
  }

  async saveAggregate(aggregate: Materializable, options?: OperationOptions): Promise<void> {
    await saveMaterialized('InMemoryEventStore', this.opaqueStore, aggregate, this.compressThreshold, options);
  }

  private live(aggregateId: string): EventDocument[] {
    const now = nowSeconds();
    return [...(this.streams.get(aggregateId)?.values() ?? [])]
      .filter((doc) => !isExpired(doc.t, now))
      .sort((x, y) => x.v - y.v);
  }
}
