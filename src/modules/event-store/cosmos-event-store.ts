import type { Container, JSONObject, OperationInput, SqlParameter } from '@azure/cosmos';
import type { EventRecord, History, OperationOptions, StoreSaveOptions } from './event-store.interfaces.js';
import { ConcurrencyError, EventStoreError, WriteOutcomeUnknownError } from './event-store.errors.js';
import { nowSeconds, toEventDocument, type EventDocument, type PreparedEvent } from './event-documents.js';
import {
  ChunkedEventStore,
  type CommittedDocument,
  type EventStoreOptions,
  type ListedDocument,
  type ReadAllFilter,
  type Removal,
  isStub,
} from './event-store-base.js';
import { MAX_BATCH_OPERATIONS } from './cosmos-limits.js';
import { singlePartitionQuery } from './single-partition-query.js';
import { messageOf } from '../cosmos/index.js';
import {
  backoffMs,
  classifyBatchFailure,
  pause,
  resolveRetryOptions,
  retryTransient,
  sdkRetriedUnknownOutcome,
  type StoreRetryOptions,
} from './transient-faults.js';
import { readCosmosTip, saveCosmosTip, type ReadTipOptions, type SaveWithTipOptions, type StoredTip, type TipBody, type TipStore } from './tip-store.js';
import { recordsDetails, traceStore } from '../telemetry/index.js';

// Expired records are filtered by the query itself, so a tail page of n holds n live records.
const LIVE = '(NOT IS_DEFINED(c.t) OR c.t = 0 OR c.t > @now)';
// Only events carry a numeric `v`: the tip and the stubs truncation leaves are never read as events.
const EVENT = 'c.a = @a AND IS_NUMBER(c.v)';
const FIELDS = 'c.v, c.d, c.t, c.y, c.m';
// maxItemCount is an int32 on the wire.
const MAX_PAGE_SIZE = 2_147_483_647;
const LOAD_SQL = `SELECT ${FIELDS} FROM c WHERE ${EVENT} AND ${LIVE} ORDER BY c.v ASC`;
// readStream resuming after a failed page: past the last version already handed out.
const RESUME_SQL = `SELECT ${FIELDS} FROM c WHERE ${EVENT} AND c.v > @after AND ${LIVE} ORDER BY c.v ASC`;
const TAIL_SQL = `SELECT ${FIELDS} FROM c WHERE ${EVENT} AND ${LIVE} ORDER BY c.v DESC`;
const RANGE_SQL = `SELECT ${FIELDS} FROM c WHERE ${EVENT} AND c.v >= @from AND c.v <= @to AND ${LIVE} ORDER BY c.v ASC`;
// The newest stored event, expired or not: its version is taken either way.
const LAST_SQL = `SELECT TOP 1 ${FIELDS} FROM c WHERE ${EVENT} ORDER BY c.v DESC`;
// Stored versions as they are, expired or not: for telling our own lost write from another writer's.
const VERSIONS_SQL = `SELECT ${FIELDS} FROM c WHERE ${EVENT} AND ARRAY_CONTAINS(@vs, c.v)`;
// Every document of the partition, events or not (the tip, stubs): what truncation and erasure go through.
const DOCUMENTS_SQL = 'SELECT c.id, c.v, c.y, c.t, c.r FROM c WHERE c.a = @a';

/**
 * The event store on the events container (partition key `/a`), with materialization through an
 * `OpaqueStore` on the aggregates container: protosource's `cosmosdbstore`, same documents on the wire.
 *
 * Faults: @azure/cosmos retries throttled requests (429) itself (`CosmosModule`'s `retryOptions`), a
 * batch after nothing else (but a 503 or timeout on accounts with per-partition failover), and a read
 * after a 503 once and after a 408 never. The store retries the rest, answers cut mid-body
 * (`Error reading response as text: aborted`) among them (`retries` option): reads from the start (`readStream` from the failed page on, past the last record
 * read), batches with the same documents. After an attempt whose
 * outcome is unknown (a reset, a cut answer or a timeout after sending, a 408 or 503), a conflict on the resend is read
 * back and counts as success only if every document of the chunk is stored exactly as sent (`v`, `d`,
 * `t`); otherwise it is a `ConcurrencyError`. Retries running out with the outcome unknown give
 * `WriteOutcomeUnknownError`, and so does an abort (`abortSignal`) while a batch is in flight, or after an
 * attempt of unknown outcome during the wait before a retry or the read-back, with the abort's reason (an
 * `AbortError`) as its `cause`. An abort before the first request, between chunks, or while waiting after a
 * refused attempt stays an `AbortError`: nothing of that chunk was stored.
 *
 * @example
 * const store = new CosmosEventStore(eventsContainer, { opaqueStore: new CosmosOpaqueStore(aggregatesContainer) });
 * await store.save('order-1', [{ version: 1, data: new TextEncoder().encode('{"placed":true}') }]);
 * const { records } = await store.load('order-1');
 */
export class CosmosEventStore extends ChunkedEventStore implements TipStore {
  private readonly retries: Required<StoreRetryOptions>;

  constructor(
    private readonly events: Container,
    options: EventStoreOptions = {},
  ) {
    super(options);
    this.retries = resolveRetryOptions(options.retries);
  }

  /** The stream's tip document: one point read, answered 304 (`'not-modified'`) when `ifNoneMatch` still holds (see `TipStore`). */
  readTip(aggregateId: string, options?: ReadTipOptions): Promise<StoredTip | 'not-modified' | undefined> {
    return traceStore(this.events, 'readTip', {}, () => readCosmosTip(this.events, this.retries, aggregateId, options));
  }

  /** Events and the tip in one transactional batch (see `TipStore.saveWithTip`). */
  saveWithTip(aggregateId: string, records: readonly EventRecord[], tip: TipBody, options?: SaveWithTipOptions): Promise<string | undefined> {
    const details = { ...recordsDetails(records), version: tip.version };
    return traceStore(this.events, 'saveWithTip', details, () => saveCosmosTip(this.events, this.retries, this.eventTtlSeconds, aggregateId, records, tip, options));
  }

  // Telemetry: one-line wrappers; spans, attributes and metrics are the telemetry module's (src/modules/telemetry).
  override save(aggregateId: string, records: readonly EventRecord[], options?: StoreSaveOptions): Promise<void> {
    return traceStore(this.events, 'save', recordsDetails(records), () => super.save(aggregateId, records, options));
  }

  override load(aggregateId: string, options?: OperationOptions): Promise<History> {
    return traceStore(this.events, 'load', {}, () => super.load(aggregateId, options), tracedHistory);
  }

  override loadTail(aggregateId: string, n: number, options?: OperationOptions): Promise<History> {
    return traceStore(this.events, 'loadTail', { records: n }, () => super.loadTail(aggregateId, n, options), tracedHistory);
  }

  protected writeChunk(aggregateId: string, chunk: PreparedEvent[], options?: OperationOptions, expected?: number): Promise<void> {
    const details = { records: chunk.length, version: chunk.at(-1)?.record.version };
    return traceStore(this.events, 'batch', details, () => this.sendChunk(aggregateId, chunk, options, expected));
  }

  /**
   * One transactional batch, retried on transient failures. Every attempt sends the very documents of the
   * first (same `t` and `ttl`): after an attempt whose outcome is unknown, a 409 on a retry may be our own
   * first attempt, and only identical documents prove that.
   */
  private async sendChunk(aggregateId: string, chunk: PreparedEvent[], options?: OperationOptions, expected?: number): Promise<void> {
    // Expiry is computed against this chunk's clock (SPEC §3); only TTL digits can differ from the sizing pass.
    const now = nowSeconds();
    const docs = chunk.map(({ record }) => toEventDocument(aggregateId, record, now, this.eventTtlSeconds));
    const signal = options?.abortSignal;
    // Set once an attempt may have been applied without our hearing of it: from then on a conflict may be ours.
    let outcomeUnknown = false;
    for (let attempt = 1; ; attempt++) {
      let response;
      try {
        // Fresh operation objects per attempt (the SDK decorates them); the documents stay the same.
        const operations: OperationInput[] = docs.map((doc) => ({ operationType: 'Create', resourceBody: doc }));
        // The expected last version N is proved in the same batch: a read of N, then the create of N+1.
        if (expected !== undefined && expected > 0) operations.unshift({ operationType: 'Read', id: String(expected) });
        response = await this.events.items.batch(operations, aggregateId, { abortSignal: signal });
      } catch (err) {
        // Aborted in flight: the server may have the batch and run it all the same.
        if (signal?.aborted) throw new WriteOutcomeUnknownError(aggregateId, docs.map((d) => d.v), { cause: signal.reason });
        const failure = classifyBatchFailure(err);
        outcomeUnknown ||= failure.outcomeUnknown;
        if (failure.transient && attempt < this.retries.maxAttempts) {
          try {
            await pause(backoffMs(attempt, this.retries), signal);
          } catch (abort) {
            // An earlier attempt may have stored the chunk: the caller must hear that, not a bare abort.
            if (outcomeUnknown) throw new WriteOutcomeUnknownError(aggregateId, docs.map((d) => d.v), { cause: abort });
            throw abort;
          }
          continue;
        }
        if (outcomeUnknown) throw new WriteOutcomeUnknownError(aggregateId, docs.map((d) => d.v), { cause: err });
        throw new EventStoreError(`save ${describe(aggregateId, chunk)} failed: ${messageOf(err)}`, { cause: err });
      }
      outcomeUnknown ||= sdkRetriedUnknownOutcome(response.diagnostics);
      // Real Cosmos DB answers a failed transactional batch with 207 and per-operation statuses; the SDK
      // does not throw for it, so every operation's status decides.
      const all = response.result ?? [];
      const checkedRead = expected !== undefined && expected > 0 ? all[0] : undefined;
      const results = checkedRead ? all.slice(1) : all;
      const conflicts = results.flatMap((r, i) => (r.statusCode === 409 ? [docs[i].v] : []));
      // Version N missing: the stream is not where the caller says (a read changes nothing, so no doubt).
      if (checkedRead?.statusCode === 404) throw await this.mismatch(aggregateId, expected!, options);
      if (conflicts.length > 0) {
        if (!outcomeUnknown) {
          if (expected !== undefined) throw await this.mismatch(aggregateId, expected, options);
          throw new ConcurrencyError(aggregateId, conflicts);
        }
        let check: { ours: boolean; taken: number[] };
        try {
          check = await this.compareStored(aggregateId, docs, options);
        } catch (err) {
          // Aborted or failed, the read-back left the question open: the chunk may be stored.
          throw new WriteOutcomeUnknownError(aggregateId, docs.map((d) => d.v), { cause: signal?.aborted ? signal.reason : err });
        }
        if (check.ours) return; // the lost acknowledgement: our earlier attempt was applied
        if (expected !== undefined) throw await this.mismatch(aggregateId, expected, options);
        throw new ConcurrencyError(aggregateId, check.taken.length > 0 ? check.taken : conflicts);
      }
      // 424 only says "another operation failed": report the operation that did.
      const failed = all.find((r) => r.statusCode >= 400 && r.statusCode !== 424) ?? all.find((r) => r.statusCode >= 400);
      if (failed || results.length !== chunk.length) {
        const status = failed?.statusCode ?? response.code;
        if (outcomeUnknown) throw new WriteOutcomeUnknownError(aggregateId, docs.map((d) => d.v));
        throw new EventStoreError(`save ${describe(aggregateId, chunk)} failed with status ${status}`);
      }
      return;
    }
  }

  /**
   * After a conflict that may be the echo of our own lost attempt: whether every document of the chunk is
   * stored exactly as sent (`v`, `d`, `t`), which makes the chunk ours (a chunk is all-or-nothing, so it
   * cannot be partly ours), and which versions hold other bytes than ours.
   */
  private async compareStored(
    aggregateId: string,
    docs: EventDocument[],
    options?: OperationOptions,
  ): Promise<{ ours: boolean; taken: number[] }> {
    const stored = new Map<number, EventDocument>();
    const versions = docs.map((d) => d.v);
    for (const doc of await this.query(aggregateId, VERSIONS_SQL, -1, Infinity, options, [{ name: '@vs', value: versions }])) {
      stored.set(doc.v, doc);
    }
    const taken = docs.filter((sent) => {
      const found = stored.get(sent.v);
      return found !== undefined && (found.d !== sent.d || found.t !== sent.t || found.y !== sent.y);
    });
    return { ours: taken.length === 0 && docs.every((d) => stored.has(d.v)), taken: taken.map((d) => d.v) };
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
    const signal = options?.abortSignal;
    // One expiry cut-off for the whole stream, resumes included.
    const now = nowSeconds();
    let after: number | undefined; // the last version handed out: a retry resumes past it
    const open = () =>
      singlePartitionQuery<EventDocument>(
        this.events,
        after === undefined
          ? { query: LOAD_SQL, parameters: [{ name: '@a', value: aggregateId }, { name: '@now', value: now }] }
          : {
              query: RESUME_SQL,
              parameters: [
                { name: '@a', value: aggregateId },
                { name: '@now', value: now },
                { name: '@after', value: after },
              ],
            },
        { partitionKey: aggregateId, maxItemCount: pageSize, abortSignal: signal },
      );
    // One request per page, made only when the caller asks for more: the SDK holds one page at a time.
    let iterator = open();
    while (iterator.hasMoreResults()) {
      const page = await traceStore(this.events, 'readStream', { records: pageSize }, () => retryTransient(`readStream ${JSON.stringify(aggregateId)}`, this.retries, signal, (attempt) => {
        // A read changes nothing: a fresh query picks up after the last version read.
        if (attempt > 1) iterator = open();
        return iterator.fetchNext();
      }), (found) => ({ records: found.resources?.length ?? 0 }));
      const docs = page.resources ?? [];
      if (docs.length > 0) {
        after = docs[docs.length - 1].v;
        yield docs;
      }
    }
  }

  protected async readRange(aggregateId: string, from: number, to: number, options?: OperationOptions): Promise<EventDocument[]> {
    return this.query(aggregateId, RANGE_SQL, -1, Infinity, options, [
      { name: '@from', value: from },
      { name: '@to', value: to },
    ]);
  }

  protected async readLast(aggregateId: string, options?: OperationOptions): Promise<EventDocument | undefined> {
    return (await this.query(aggregateId, LAST_SQL, 1, 1, options))[0];
  }

  /**
   * Deletes in transactional batches of at most 100 operations, each all-or-nothing, the `lead` event's
   * create first in the first one. A document gone before its delete (a concurrent erasure, or a resent
   * batch whose first attempt was applied) fails its batch with 404, and a lead whose version was taken
   * meanwhile with 409: the partition is listed again and what is left is done, a few rounds at most.
   */
  protected async removeDocuments(
    aggregateId: string,
    choose: (docs: readonly ListedDocument[]) => Removal | undefined,
    options?: OperationOptions,
  ): Promise<void> {
    const signal = options?.abortSignal;
    for (let round = 1; ; round++) {
      const listed = await this.query<ListedDocument>(aggregateId, DOCUMENTS_SQL, -1, Infinity, options);
      const removal = choose(listed);
      if (!removal) return;
      // Every removed version stays taken by a stub in place of its event (an Upsert where a Delete would be,
      // same count): no save can write into the freed versions, and a checked save's create of N+1 conflicts
      // whenever N is a stub. Documents that are neither events nor stubs (the tip) go.
      const operations: OperationInput[] = listed.filter(removal.remove).map((doc) =>
        typeof doc.v === 'number' || isStub(doc)
          ? { operationType: 'Upsert', resourceBody: stub(aggregateId, doc.id, removal) }
          : { operationType: 'Delete', id: doc.id },
      );
      const batches: OperationInput[][] = [];
      if (removal.lead) {
        const lead = toEventDocument(aggregateId, removal.lead.record, nowSeconds(), this.eventTtlSeconds);
        batches.push([{ operationType: 'Create', resourceBody: lead }, ...operations.splice(0, MAX_BATCH_OPERATIONS - 1)]);
      }
      while (operations.length > 0) batches.push(operations.splice(0, MAX_BATCH_OPERATIONS));
      let again = false;
      for (const batch of batches) {
        const response = await retryTransient(`remove documents of ${JSON.stringify(aggregateId)}`, this.retries, signal, () =>
          this.events.items.batch(batch, aggregateId, { abortSignal: signal }),
        );
        const failed = (response.result ?? []).find((r) => r.statusCode >= 400 && r.statusCode !== 424);
        if (failed?.statusCode === 404 || failed?.statusCode === 409) {
          again = true;
          break;
        }
        if (failed) throw new EventStoreError(`removing documents of ${JSON.stringify(aggregateId)} failed with status ${failed.statusCode}`);
      }
      if (!again) return;
      if (round >= 5) throw new EventStoreError(`removing documents of ${JSON.stringify(aggregateId)}: other writers kept changing the stream`);
    }
  }

  /**
   * One cross-partition query by commit time: `ORDER BY c._ts` alone, which any index policy that indexes
   * `_ts` serves (the default one and this package's), with every filter in the WHERE clause.
   */
  protected async *readAllPages(filter: ReadAllFilter, pageSize: number, options?: OperationOptions): AsyncGenerator<CommittedDocument[]> {
    const signal = options?.abortSignal;
    const where = ['IS_NUMBER(c.v)', LIVE];
    const parameters: SqlParameter[] = [{ name: '@now', value: nowSeconds() }];
    if (filter.types) {
      if (filter.types.length === 0) return;
      where.push(`c.y IN (${filter.types.map((_, i) => `@y${i}`).join(', ')})`);
      filter.types.forEach((type, i) => parameters.push({ name: `@y${i}`, value: type }));
    }
    if (filter.prefix !== undefined) {
      where.push('STARTSWITH(c.a, @prefix)');
      parameters.push({ name: '@prefix', value: filter.prefix });
    }
    if (filter.since !== undefined) {
      where.push('c._ts >= @since');
      parameters.push({ name: '@since', value: filter.since });
    }
    if (filter.until !== undefined) {
      where.push('c._ts < @until');
      parameters.push({ name: '@until', value: filter.until });
    }
    const iterator = this.events.items.query<CommittedDocument>(
      { query: `SELECT c.a, ${FIELDS}, c._ts FROM c WHERE ${where.join(' AND ')} ORDER BY c._ts ASC`, parameters },
      { maxItemCount: pageSize, abortSignal: signal },
    );
    while (iterator.hasMoreResults()) {
      // A failed page is not retried here: the caller resumes from the last position it was handed.
      const page = await iterator.fetchNext();
      if (page.resources && page.resources.length > 0) yield page.resources;
    }
  }

  private async query<T = EventDocument>(
    aggregateId: string,
    sql: string,
    pageSize: number,
    limit: number,
    options?: OperationOptions,
    extraParameters: SqlParameter[] = [],
  ): Promise<T[]> {
    const signal = options?.abortSignal;
    // A read changes nothing: on a transient failure the whole query runs again from the start.
    return retryTransient(`load ${JSON.stringify(aggregateId)}`, this.retries, signal, async () => {
      const iterator = singlePartitionQuery<T>(
        this.events,
        {
          query: sql,
          parameters: [
            { name: '@a', value: aggregateId },
            // Only when the query names it: a parameter the query does not use is not worth a doubt.
            ...(sql.includes('@now') ? [{ name: '@now', value: nowSeconds() }] : []),
            ...extraParameters,
          ],
        },
        { partitionKey: aggregateId, maxItemCount: pageSize, abortSignal: signal },
      );
      const docs: T[] = [];
      while (docs.length < limit && iterator.hasMoreResults()) {
        const page = await iterator.fetchNext();
        for (const doc of page.resources ?? []) {
          docs.push(doc);
          if (docs.length === limit) break;
        }
      }
      return docs;
    });
  }
}

/** The document left in place of a removed event: no `v`, so no read takes it for an event; expiring with the tombstone. */
function stub(aggregateId: string, id: string, { stubVersion, stubExpiry }: Removal): JSONObject {
  const doc: JSONObject = { id, a: aggregateId, r: stubVersion };
  if (stubExpiry) {
    doc.t = stubExpiry;
    doc.ttl = Math.max(1, stubExpiry - nowSeconds());
  }
  return doc;
}

const tracedHistory = ({ records }: History) => ({ records: records.length, version: records.at(-1)?.version });

function describe(aggregateId: string, chunk: PreparedEvent[]): string {
  return `of aggregate ${JSON.stringify(aggregateId)} versions ${chunk[0].doc.v}..${chunk[chunk.length - 1].doc.v}`;
}
