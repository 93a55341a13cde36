import type { OperationOptions } from './event-store.interfaces.js';
import { ConcurrencyError } from './event-store.errors.js';
import { nowSeconds, toEventDocument, type EventDocument, type PreparedEvent } from './event-documents.js';
import { isExpired } from './aggregate-documents.js';
import { checkSignal } from './validation.js';
import { ChunkedEventStore, type EventStoreOptions } from './event-store-base.js';

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
export class InMemoryEventStore extends ChunkedEventStore {
  private readonly streams = new Map<string, Map<number, EventDocument>>();

  constructor(options: EventStoreOptions = {}) {
    super(options);
  }

  protected async writeChunk(aggregateId: string, chunk: PreparedEvent[], options?: OperationOptions): Promise<void> {
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
