import type { Container, OperationInput } from '@azure/cosmos';
import type { OperationOptions } from './event-store.interfaces.js';
import { ConcurrencyError, EventStoreError } from './event-store.errors.js';
import { nowSeconds, toEventDocument, type EventDocument, type PreparedEvent } from './event-documents.js';
import { ChunkedEventStore, type EventStoreOptions } from './event-store-base.js';
import { messageOf } from '../cosmos/index.js';

// Expired records are filtered by the query itself, so a tail page of n holds n live records.
const LIVE = '(NOT IS_DEFINED(c.t) OR c.t = 0 OR c.t > @now)';
// maxItemCount is an int32 on the wire.
const MAX_PAGE_SIZE = 2_147_483_647;
const LOAD_SQL = `SELECT c.v, c.d, c.t FROM c WHERE c.a = @a AND ${LIVE} ORDER BY c.v ASC`;
const TAIL_SQL = `SELECT c.v, c.d, c.t FROM c WHERE c.a = @a AND ${LIVE} ORDER BY c.v DESC`;

/**
 * The event store on the events container (partition key `/a`), with materialization through an
 * `OpaqueStore` on the aggregates container: protosource's `cosmosdbstore`, same documents on the wire.
 *
 * @example
 * const store = new CosmosEventStore(eventsContainer, { opaqueStore: new CosmosOpaqueStore(aggregatesContainer) });
 * await store.save('order-1', [{ version: 1, data: new TextEncoder().encode('{"placed":true}') }]);
 * const { records } = await store.load('order-1');
 */
export class CosmosEventStore extends ChunkedEventStore {
  constructor(
    private readonly events: Container,
    options: EventStoreOptions = {},
  ) {
    super(options);
  }

  protected async writeChunk(aggregateId: string, chunk: PreparedEvent[], options?: OperationOptions): Promise<void> {
    // Expiry is computed against this chunk's clock (SPEC §3); only TTL digits can differ from the sizing pass.
    const now = nowSeconds();
    const operations: OperationInput[] = chunk.map(({ record }) => ({
      operationType: 'Create',
      resourceBody: toEventDocument(aggregateId, record, now, this.eventTtlSeconds),
    }));
    let response;
    try {
      response = await this.events.items.batch(operations, aggregateId, { abortSignal: options?.abortSignal });
    } catch (err) {
      options?.abortSignal?.throwIfAborted();
      throw new EventStoreError(`save ${describe(aggregateId, chunk)} failed: ${messageOf(err)}`, { cause: err });
    }
    // Real Cosmos DB answers a failed transactional batch with 207 and per-operation statuses; the SDK
    // does not throw for it, so every operation's status decides.
    const results = response.result ?? [];
    const conflicts = results.flatMap((r, i) => (r.statusCode === 409 ? [chunk[i].doc.v] : []));
    if (conflicts.length > 0) throw new ConcurrencyError(aggregateId, conflicts);
    // 424 only says "another operation failed": report the operation that did.
    const failed = results.find((r) => r.statusCode >= 400 && r.statusCode !== 424) ?? results.find((r) => r.statusCode >= 400);
    if (failed || results.length !== chunk.length) {
      const status = failed?.statusCode ?? response.code;
      throw new EventStoreError(`save ${describe(aggregateId, chunk)} failed with status ${status}`);
    }
  }

  protected async readLive(aggregateId: string, last: number | undefined, options?: OperationOptions): Promise<EventDocument[]> {
    if (last === undefined) {
      // maxItemCount -1 lets the service fill pages up to its 4 MB limit: one round trip for most streams.
      return this.query(aggregateId, LOAD_SQL, -1, Infinity, options);
    }
    // Newest first, one page of `last`, stopping as soon as it has them.
    return (await this.query(aggregateId, TAIL_SQL, Math.min(last, MAX_PAGE_SIZE), last, options)).reverse();
  }

  protected async *readPages(aggregateId: string, pageSize: number, options?: OperationOptions): AsyncGenerator<EventDocument[]> {
    // One request per page, made only when the caller asks for more: the SDK holds one page at a time.
    const iterator = this.events.items.query<EventDocument>(
      { query: LOAD_SQL, parameters: [{ name: '@a', value: aggregateId }, { name: '@now', value: nowSeconds() }] },
      { partitionKey: aggregateId, maxItemCount: pageSize, abortSignal: options?.abortSignal },
    );
    while (iterator.hasMoreResults()) {
      let page;
      try {
        page = await iterator.fetchNext();
      } catch (err) {
        options?.abortSignal?.throwIfAborted();
        throw new EventStoreError(`readStream ${JSON.stringify(aggregateId)} failed: ${messageOf(err)}`, { cause: err });
      }
      if (page.resources && page.resources.length > 0) yield page.resources;
    }
  }

  private async query(
    aggregateId: string,
    sql: string,
    pageSize: number,
    limit: number,
    options?: OperationOptions,
  ): Promise<EventDocument[]> {
    const iterator = this.events.items.query<EventDocument>(
      { query: sql, parameters: [{ name: '@a', value: aggregateId }, { name: '@now', value: nowSeconds() }] },
      { partitionKey: aggregateId, maxItemCount: pageSize, abortSignal: options?.abortSignal },
    );
    const docs: EventDocument[] = [];
    try {
      while (docs.length < limit && iterator.hasMoreResults()) {
        const page = await iterator.fetchNext();
        for (const doc of page.resources ?? []) {
          docs.push(doc);
          if (docs.length === limit) break;
        }
      }
    } catch (err) {
      options?.abortSignal?.throwIfAborted();
      throw new EventStoreError(`load ${JSON.stringify(aggregateId)} failed: ${messageOf(err)}`, { cause: err });
    }
    return docs;
  }
}

function describe(aggregateId: string, chunk: PreparedEvent[]): string {
  return `of aggregate ${JSON.stringify(aggregateId)} versions ${chunk[0].doc.v}..${chunk[chunk.length - 1].doc.v}`;
}
