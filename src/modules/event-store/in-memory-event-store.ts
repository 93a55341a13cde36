import type { OperationOptions } from './event-store.interfaces.js';
import { ConcurrencyError } from './event-store.errors.js';
import { fromEventDocument, nowSeconds, toEventDocument, type EventDocument, type PreparedEvent } from './event-documents.js';
import { isExpired } from './aggregate-documents.js';
import { checkSignal } from './validation.js';
import { ChunkedEventStore, type EventStoreOptions } from './event-store-base.js';
import type { EventRecord } from './event-store.interfaces.js';
import { prepareTipSave, toTipDocument, type ReadTipOptions, type SaveWithTipOptions, type StoredTip, type TipBody, type TipStore } from './tip-store.js';

/** One event as `InMemoryEventStore` committed it: what a change feed would hand out. */
export interface CommittedEvent {
  aggregateId: string;
  version: number;
  data: Uint8Array;
  committedAt: Date;
}

/**
 * The event store's contract in memory: same validation, same chunking into all-or-nothing batches of
 * 100, same conflicts, ordering, tail and TTL filtering as `CosmosEventStore`. For unit tests.
 *
 * @example
 * const moduleRef = await Test.createTestingModule({ imports: [LedgerModule] })
 *   .overrideModule(EventStoreModule).useModule(EventStoreModule.inMemory())
 *   .overrideProvider(STORE).useValue(new InMemoryEventStore())
 *   .compile();
 */
export class InMemoryEventStore extends ChunkedEventStore implements TipStore {
  private readonly streams = new Map<string, Map<number, EventDocument>>();
  // Every committed event in commit order, as the latest-version change feed keeps them (for
  // `SubscriptionsModule.inMemory()`): an event stays here after it expires, until the store is dropped.
  private readonly committed: CommittedEvent[] = [];
  private readonly commitListeners = new Set<() => void>();

  private readonly tips = new Map<string, StoredTip>();
  private tipEtags = 0;

  constructor(options: EventStoreOptions = {}) {
    super(options);
  }

  /** The stream's tip (see `TipStore.readTip`); a deep copy, as a read from Cosmos DB would be. */
  async readTip(aggregateId: string, options?: ReadTipOptions): Promise<StoredTip | 'not-modified' | undefined> {
    await Promise.resolve();
    checkSignal(options);
    const stored = this.tips.get(aggregateId);
    if (!stored) return undefined;
    if (options?.ifNoneMatch !== undefined && options.ifNoneMatch === stored.etag) return 'not-modified';
    return structuredClone(stored);
  }

  /** Events and the tip, all or nothing (see `TipStore.saveWithTip`). */
  async saveWithTip(aggregateId: string, records: readonly EventRecord[], tip: TipBody, options?: SaveWithTipOptions): Promise<string | undefined> {
    checkSignal(options);
    const tipDoc = toTipDocument(aggregateId, tip);
    const prepared = prepareTipSave(aggregateId, records, tipDoc, this.eventTtlSeconds);
    await Promise.resolve(); // one request: other callers may interleave before it, never inside it
    checkSignal(options);
    const current = this.tips.get(aggregateId);
    const stream = this.streams.get(aggregateId);
    const taken = prepared.find(({ record }) => stream?.has(record.version));
    if (taken) throw new ConcurrencyError(aggregateId, [taken.record.version]);
    if (options?.ifMatch === undefined ? current !== undefined : current?.etag !== options.ifMatch) {
      throw new ConcurrencyError(aggregateId, prepared.map((p) => p.record.version));
    }
    // Checked and written without yielding: one transactional batch.
    const target = stream ?? new Map<number, EventDocument>();
    const now = nowSeconds();
    for (const { record } of prepared) {
      const doc = toEventDocument(aggregateId, record, now, this.eventTtlSeconds);
      target.set(record.version, doc);
      this.committed.push({ aggregateId, version: doc.v, data: fromEventDocument(doc).data, committedAt: new Date(now * 1000) });
    }
    this.streams.set(aggregateId, target);
    const etag = `"${++this.tipEtags}"`;
    this.tips.set(aggregateId, { etag, tip: structuredClone(tipDoc.tip) });
    if (prepared.length > 0) for (const listener of this.commitListeners) listener();
    return etag;
  }

  protected async writeChunk(aggregateId: string, chunk: PreparedEvent[], options?: OperationOptions): Promise<void> {
    await Promise.resolve(); // chunks are separate requests: other callers may interleave between them
    checkSignal(options);
    const stream = this.streams.get(aggregateId) ?? new Map<number, EventDocument>();
    // A Cosmos DB batch stops at its first failing operation (the rest answer 424): name that one only.
    const conflict = chunk.find(({ record }) => stream.has(record.version));
    if (conflict) throw new ConcurrencyError(aggregateId, [conflict.record.version]);
    const now = nowSeconds();
    const committedAt = new Date(now * 1000);
    for (const { record } of chunk) {
      const doc = toEventDocument(aggregateId, record, now, this.eventTtlSeconds);
      stream.set(record.version, doc);
      this.committed.push({ aggregateId, version: doc.v, data: fromEventDocument(doc).data, committedAt });
    }
    this.streams.set(aggregateId, stream);
    for (const listener of this.commitListeners) listener();
  }

  /**
   * The events committed after the first `position` ones, in commit order (each chunk's events by version),
   * and the position after them: an in-memory change feed. `position` 0 reads from the first commit.
   */
  changesSince(position: number): { events: readonly CommittedEvent[]; position: number } {
    return { events: this.committed.slice(position), position: this.committed.length };
  }

  /** Calls `listener` after every committed chunk; returns what removes it. */
  onCommit(listener: () => void): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  protected async *readPages(aggregateId: string, pageSize: number, options?: OperationOptions): AsyncGenerator<EventDocument[]> {
    const now = nowSeconds();
    let after = 0;
    for (;;) {
      await Promise.resolve(); // pages are separate requests: writers may append between them
      checkSignal(options);
      // Resumes after the last version seen, as a Cosmos DB continuation does over ORDER BY c.v.
      const page = [...(this.streams.get(aggregateId)?.values() ?? [])]
        .filter((doc) => doc.v > after && !isExpired(doc.t, now))
        .sort((x, y) => x.v - y.v)
        .slice(0, pageSize);
      if (page.length === 0) return;
      yield page;
      if (page.length < pageSize) return;
      after = page[page.length - 1].v;
    }
  }

  protected async readLive(aggregateId: string, last: number | undefined): Promise<EventDocument[]> {
    const now = nowSeconds();
    const live = [...(this.streams.get(aggregateId)?.values() ?? [])]
      .filter((doc) => !isExpired(doc.t, now))
      .sort((x, y) => x.v - y.v);
    return last === undefined ? live : live.slice(Math.max(0, live.length - last));
  }
}
