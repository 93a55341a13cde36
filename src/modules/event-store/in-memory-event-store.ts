import type { OperationOptions } from './event-store.interfaces.js';
import { ConcurrencyError } from './event-store.errors.js';
import { fromEventDocument, nowSeconds, toEventDocument, type EventDocument, type PreparedEvent } from './event-documents.js';
import { isExpired } from './aggregate-documents.js';
import { checkSignal } from './validation.js';
import {
  ChunkedEventStore,
  type CommittedDocument,
  type EventStoreOptions,
  type ListedDocument,
  type ReadAllFilter,
  type Removal,
} from './event-store-base.js';
import type { EventRecord } from './event-store.interfaces.js';
import { expireWithEvents, isLiveTip, prepareTipSave, toTipDocument, type ReadTipOptions, type SaveWithTipOptions, type StoredTip, type TipBody, type TipStore } from './tip-store.js';

/** One event as `InMemoryEventStore` committed it: what a change feed would hand out. */
export interface CommittedEvent {
  aggregateId: string;
  version: number;
  data: Uint8Array;
  committedAt: Date;
  /** The record's `type`, when it has one (`'$stream-deleted'` for the tombstone of `deleteStream`). */
  type?: string;
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
  private readonly streams = new Map<string, Map<number, CommittedDocument>>();
  // Versions removed by truncation or erasure, which stay taken (Cosmos DB keeps a stub under each id): per
  // stream, version -> the stub's first version kept (`r`) and expiry (`t`, epoch seconds, 0: never).
  private readonly stubs = new Map<string, Map<number, { r: number; t: number }>>();
  // Every committed event in commit order, as the latest-version change feed keeps them (for
  // `SubscriptionsModule.inMemory()`): an event stays here after it expires, until the store is dropped.
  // An event removed by truncation or erasure leaves a hole (null), so positions stay what they were.
  private readonly committed: Array<CommittedEvent | null> = [];
  private readonly commitListeners = new Set<() => void>();

  private readonly tips = new Map<string, StoredTip>();
  private tipEtags = 0;
  private readonly tipExpiry = new Map<string, number>();

  constructor(options: EventStoreOptions = {}) {
    super(options);
  }

  /** The stream's tip (see `TipStore.readTip`); a deep copy, as a read from Cosmos DB would be. */
  async readTip(aggregateId: string, options?: ReadTipOptions): Promise<StoredTip | 'not-modified' | undefined> {
    await Promise.resolve();
    checkSignal(options);
    const stored = this.liveTip(aggregateId);
    if (!stored) return undefined;
    if (options?.ifNoneMatch !== undefined && options.ifNoneMatch === stored.etag) return 'not-modified';
    return structuredClone(stored);
  }

  /** Events and the tip, all or nothing (see `TipStore.saveWithTip`). */
  async saveWithTip(aggregateId: string, records: readonly EventRecord[], tip: TipBody, options?: SaveWithTipOptions): Promise<string | undefined> {
    checkSignal(options);
    const tipDoc = toTipDocument(aggregateId, tip);
    const prepared = prepareTipSave(aggregateId, records, tipDoc, this.eventTtlSeconds);
    expireWithEvents(tipDoc, prepared);
    await Promise.resolve(); // one request: other callers may interleave before it, never inside it
    checkSignal(options);
    const current = this.liveTip(aggregateId);
    const stream = this.streams.get(aggregateId);
    const taken = prepared.find(({ record }) => stream?.has(record.version) || this.stubbed(aggregateId, record.version));
    if (taken) throw new ConcurrencyError(aggregateId, [taken.record.version]);
    if (options?.ifMatch === undefined ? current !== undefined : current?.etag !== options.ifMatch) {
      throw new ConcurrencyError(aggregateId, prepared.map((p) => p.record.version));
    }
    // Checked and written without yielding: one transactional batch.
    const target = stream ?? new Map<number, CommittedDocument>();
    const now = nowSeconds();
    for (const { record } of prepared) {
      const doc: CommittedDocument = { ...toEventDocument(aggregateId, record, now, this.eventTtlSeconds), _ts: now };
      target.set(record.version, doc);
      const event: CommittedEvent = { aggregateId, version: doc.v, data: fromEventDocument(doc).data, committedAt: new Date(now * 1000) };
      if (doc.y !== undefined) event.type = doc.y;
      this.committed.push(event);
    }
    this.streams.set(aggregateId, target);
    const etag = `"${++this.tipEtags}"`;
    this.tips.set(aggregateId, { etag, tip: structuredClone(tipDoc.tip) });
    if (tipDoc.t) this.tipExpiry.set(aggregateId, tipDoc.t);
    else this.tipExpiry.delete(aggregateId);
    if (prepared.length > 0) for (const listener of this.commitListeners) listener();
    return etag;
  }

  /** The tip, unless it expired with its events (as Cosmos DB no longer answers an expired item). */
  private liveTip(aggregateId: string): StoredTip | undefined {
    const expiry = this.tipExpiry.get(aggregateId);
    return expiry === undefined || isLiveTip({ t: expiry }) ? this.tips.get(aggregateId) : undefined;
  }

  protected async writeChunk(aggregateId: string, chunk: PreparedEvent[], options?: OperationOptions, expected?: number): Promise<void> {
    await Promise.resolve(); // chunks are separate requests: other callers may interleave between them
    checkSignal(options);
    const stream = this.streams.get(aggregateId) ?? new Map<number, CommittedDocument>();
    const taken = (version: number) => stream.has(version) || this.stubbed(aggregateId, version);
    // The checked save's batch: a read of version N (absent: mismatch), then the creates. A stub at N
    // passes Cosmos DB's read but then N+1 is taken too (stubs are below the first version kept), so its
    // create conflicts: a mismatch either way.
    if (expected !== undefined && expected > 0 && !stream.has(expected)) throw await this.mismatch(aggregateId, expected, options);
    // A Cosmos DB batch stops at its first failing operation (the rest answer 424): name that one only.
    const conflict = chunk.find(({ record }) => taken(record.version));
    if (conflict) {
      if (expected !== undefined) throw await this.mismatch(aggregateId, expected, options);
      throw new ConcurrencyError(aggregateId, [conflict.record.version]);
    }
    const now = nowSeconds();
    const committedAt = new Date(now * 1000);
    for (const { record } of chunk) {
      const doc: CommittedDocument = { ...toEventDocument(aggregateId, record, now, this.eventTtlSeconds), _ts: now };
      stream.set(record.version, doc);
      const event: CommittedEvent = { aggregateId, version: doc.v, data: fromEventDocument(doc).data, committedAt };
      if (doc.y !== undefined) event.type = doc.y;
      this.committed.push(event);
    }
    this.streams.set(aggregateId, stream);
    for (const listener of this.commitListeners) listener();
  }

  /** Whether a live stub keeps `version` of the stream taken. */
  private stubbed(aggregateId: string, version: number): boolean {
    const stub = this.stubs.get(aggregateId)?.get(version);
    return stub !== undefined && !isExpired(stub.t, nowSeconds());
  }

  /**
   * The events committed after the first `position` ones, in commit order (each chunk's events by version),
   * and the position after them: an in-memory change feed. `position` 0 reads from the first commit.
   */
  changesSince(position: number): { events: readonly CommittedEvent[]; position: number } {
    // Removed events are gone from it, as from Cosmos DB's change feed once deleted.
    const events = this.committed.slice(position).filter((event): event is CommittedEvent => event !== null);
    return { events, position: this.committed.length };
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

  protected async readRange(aggregateId: string, from: number, to: number, options?: OperationOptions): Promise<EventDocument[]> {
    return (await this.readLive(aggregateId, undefined, options)).filter((doc) => doc.v >= from && doc.v <= to);
  }

  protected async readLast(aggregateId: string, options?: OperationOptions): Promise<EventDocument | undefined> {
    await Promise.resolve();
    checkSignal(options);
    let last: EventDocument | undefined;
    for (const doc of this.streams.get(aggregateId)?.values() ?? []) if (!last || doc.v > last.v) last = doc;
    return last;
  }

  protected async removeDocuments(
    aggregateId: string,
    choose: (docs: readonly ListedDocument[]) => Removal | undefined,
    options?: OperationOptions,
  ): Promise<void> {
    for (let round = 1; ; round++) {
      await Promise.resolve();
      checkSignal(options);
      const stream = this.streams.get(aggregateId);
      if (!stream) return;
      const stubs = [...(this.stubs.get(aggregateId) ?? new Map<number, { r: number; t: number }>())].map(
        ([version, { r, t }]): ListedDocument => ({ id: String(version), r, ...(t > 0 ? { t } : {}) }),
      );
      const removal = choose([...stream.values(), ...stubs]);
      if (!removal) return;
      if (removal.lead) {
        try {
          // The lead (the tombstone) is committed like any event, so the in-memory change feed shows it.
          await this.writeChunk(aggregateId, [removal.lead], options);
        } catch (err) {
          // Another writer appended meanwhile: look again, as the Cosmos DB store does.
          if (err instanceof ConcurrencyError && round < 5) continue;
          throw err;
        }
      }
      this.remove(aggregateId, stream, removal);
      return;
    }
  }

  private remove(aggregateId: string, stream: Map<number, CommittedDocument>, removal: Removal): void {
    // An erasure (it leads with a tombstone) takes the tip with the events, as the Cosmos DB store does.
    if (removal.lead) this.tips.delete(aggregateId);
    const stubs = this.stubs.get(aggregateId) ?? new Map<number, { r: number; t: number }>();
    this.stubs.set(aggregateId, stubs);
    const stub = { r: removal.stubVersion, t: removal.stubExpiry ?? 0 };
    // Older stubs (a truncation's, before an erasure) are replaced, as the Cosmos DB store upserts them.
    for (const [version, old] of stubs) {
      if (removal.remove({ id: String(version), r: old.r, ...(old.t > 0 ? { t: old.t } : {}) })) stubs.set(version, stub);
    }
    for (const [version, doc] of stream) {
      if (removal.lead && version === removal.lead.record.version) continue;
      if (!removal.remove(doc)) continue;
      stream.delete(version);
      // The version stays taken: a stub in place of the event.
      stubs.set(version, stub);
      const at = this.committed.findIndex((event) => event?.aggregateId === aggregateId && event.version === version);
      if (at >= 0) this.committed[at] = null;
    }
  }

  protected async *readAllPages(filter: ReadAllFilter, pageSize: number, options?: OperationOptions): AsyncGenerator<CommittedDocument[]> {
    await Promise.resolve();
    checkSignal(options);
    const now = nowSeconds();
    const types = filter.types && new Set(filter.types);
    const matching: CommittedDocument[] = [];
    for (const stream of this.streams.values()) {
      for (const doc of stream.values()) {
        if (isExpired(doc.t, now)) continue;
        if (types && (doc.y === undefined || !types.has(doc.y))) continue;
        if (filter.prefix !== undefined && !doc.a.startsWith(filter.prefix)) continue;
        if (filter.since !== undefined && doc._ts < filter.since) continue;
        if (filter.until !== undefined && doc._ts >= filter.until) continue;
        matching.push(doc);
      }
    }
    matching.sort((x, y) => x._ts - y._ts);
    for (let i = 0; i < matching.length; i += pageSize) {
      yield matching.slice(i, i + pageSize);
      await Promise.resolve();
      checkSignal(options);
    }
  }

  protected async readLive(aggregateId: string, last: number | undefined, _options?: OperationOptions): Promise<EventDocument[]> {
    const now = nowSeconds();
    const live = [...(this.streams.get(aggregateId)?.values() ?? [])]
      .filter((doc) => !isExpired(doc.t, now))
      .sort((x, y) => x.v - y.v);
    return last === undefined ? live : live.slice(Math.max(0, live.length - last));
  }
}
