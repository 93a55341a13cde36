import type { Container, FeedOptions, PatchOperation, PatchRequestBody, SqlParameter } from '@azure/cosmos';
import type {
  OpaqueData,
  OpaqueQuery,
  OpaqueQueryResult,
  OperationOptions,
  SortCondition,
} from './event-store.interfaces.js';
import { EventStoreError, NotFoundError, ValidationError } from './event-store.errors.js';
import {
  checkKeys,
  documentIdForSortKey,
  fromAggregateDocument,
  GSI_FIELDS,
  isExpired,
  toAggregateDocument,
  validateOpaqueData,
  validateQuery,
  type AggregateDocument,
} from './aggregate-documents.js';
import { nowSeconds } from './event-documents.js';
import { BodyAddressedDocuments } from './body-addressed-documents.js';
import { checkSignal } from './validation.js';
import type { TrackedOpaqueStore, TrackedPut } from './tracked-opaque-store.js';
import { statusOf, substatusOf } from '../cosmos/index.js';
import { resolveRetryOptions, retryTransient, type StoreRetryOptions } from './transient-faults.js';
import { traceStore, type StoreOperation } from '../telemetry/index.js';

// Sub-status of a 404 whose container (or database) is missing, as opposed to the item.
const MISSING_CONTAINER = 1003;
// maxItemCount is an int32 on the wire.
const MAX_PAGE_SIZE = 2_147_483_647;
// putIfNewer re-reads after each write it lost to a concurrent writer; each loss means another version was
// stored, so the loop ends quickly unless this many writers race on one document.
const MAX_CONDITIONAL_ATTEMPTS = 20;
// Cosmos DB takes at most 10 operations in one patch.
const MAX_PATCH_OPERATIONS = 10;
// The fields of an aggregates document besides its keys: each is either written by a patch or must be absent.
const OPTIONAL_FIELDS = ['body', 't', 'ttl', 'version', ...GSI_FIELDS.slice(1).flatMap(({ pk, sk }) => [pk, sk])];

// Sort-condition SQL by operator; `field` is one of our fixed names, values are parameters.
const SORT_SQL: Record<SortCondition['op'], (field: string) => string> = {
  '=': (f) => `c.${f} = @v`,
  '<': (f) => `c.${f} < @v`,
  '<=': (f) => `c.${f} <= @v`,
  '>': (f) => `c.${f} > @v`,
  '>=': (f) => `c.${f} >= @v`,
  between: (f) => `c.${f} >= @v AND c.${f} <= @v2`,
  begins_with: (f) => `STARTSWITH(c.${f}, @v)`,
};

export interface CosmosOpaqueStoreOptions {
  /**
   * How the store retries transient failures (408, 449, 503, timeouts, lost connections) of its calls, as
   * the event store's option of the same name. Default 5 attempts, waits from 100 ms doubling up to 2 s.
   */
  retries?: StoreRetryOptions;
}

/**
 * The aggregates container (partition key `/pk`) as protosource's opaque store: documents keyed by
 * `(pk, sk)` with 20 secondary-index slots.
 *
 * Faults: @azure/cosmos retries throttling (429) itself, a read after a lost connection (up to 10 times,
 * a second apart) and after a 503 once, a write after nothing else. The store retries what is left: 408,
 * 449, 503, timeouts and lost connections, answers cut mid-body included (`retries` option, as `CosmosEventStore`'s), each call as a
 * whole: `get` and `query` read again from the start (a `query` call, one page of results, runs its query
 * again); `put` sends the same upsert again; `delete` deletes again, a 404 then counting as success. A
 * repeated `put` or `delete` may land after another writer's call that overlapped ours, as if ours took
 * effect at its end: last writer wins. `putIfNewer`, for documents with a `version`, runs its
 * read-then-write again, so after a write whose answer was lost it re-reads, finds its own version (or a
 * newer one) stored and stops: it never writes an older version over a newer one, and resolves `true` when
 * what is stored is exactly what it sent. Retries
 * running out give an `EventStoreError` naming the call, the last failure as its `cause`; an abort
 * (`abortSignal`) during a request or a wait stays an `AbortError` (a write aborted in flight may still
 * land).
 *
 * Ids: see `documentIdForSortKey`. A sort key whose id holds `#` or `?` (protosource's `PROJ#<Name>`), or
 * whose document may sit under another id, is read with a single-partition query and written and deleted
 * with transactional batches, which also remove its document under any other id: never two per (pk, sk).
 *
 * @example
 * const opaque = new CosmosOpaqueStore(aggregatesContainer, { retries: { maxAttempts: 3 } });
 * await opaque.putIfNewer({ pk: 'customer-42', sk: 'order-1', version: 7, body });
 */
export class CosmosOpaqueStore implements TrackedOpaqueStore {
  private readonly retries: Required<StoreRetryOptions>;
  // Sort keys whose id holds `#` or `?`, or whose document may sit under another id (see documentIdForSortKey).
  private readonly byBody: BodyAddressedDocuments;

  constructor(
    private readonly aggregates: Container,
    options: CosmosOpaqueStoreOptions = {},
  ) {
    this.retries = resolveRetryOptions(options.retries);
    this.byBody = new BodyAddressedDocuments(aggregates);
  }

  async put(doc: OpaqueData, options?: OperationOptions): Promise<void> {
    checkSignal(options);
    validateOpaqueData(doc);
    // One body for every attempt: a repeat writes exactly what the call was asked to write.
    const body = toAggregateDocument(doc, nowSeconds());
    if (BodyAddressedDocuments.handles(doc.sk)) {
      return this.call(`put ${key(doc.pk, doc.sk)}`, options, () => this.byBody.put(doc, body, options?.abortSignal));
    }
    await this.call(`put ${key(doc.pk, doc.sk)}`, options, () =>
      this.aggregates.items.upsert(body, { abortSignal: options?.abortSignal }),
    );
  }

  async putIfNewer(doc: OpaqueData, options?: OperationOptions): Promise<boolean> {
    checkSignal(options);
    validateOpaqueData(doc);
    const what = `put ${key(doc.pk, doc.sk)}`;
    if (BodyAddressedDocuments.handles(doc.sk)) {
      const sent: AggregateDocument[] = [];
      return this.call(what, options, () => this.byBody.putIfNewer(doc, options?.abortSignal, sent), 'putIfNewer');
    }
    return (await this.readThenPut(doc, options)).written;
  }

  /**
   * `putIfNewer` in one request when it can (see `TrackedOpaqueStore`): `known` an etag (from this call's
   * last answer): a replace under `if-match`; `null` (the aggregate's first version): a create; `undefined`
   * (nothing known): a patch conditional on the stored version being older (see `conditionalPatch`). When
   * the document changed since (412), exists (409) or is gone (404), it falls back to `putIfNewer`'s
   * read-then-write. Never older over newer, either way.
   */
  async putIfNewerTracked(doc: OpaqueData, known: string | null | undefined, options?: OperationOptions): Promise<TrackedPut> {
    checkSignal(options);
    validateOpaqueData(doc);
    if (BodyAddressedDocuments.handles(doc.sk)) return { written: await this.putIfNewer(doc, options) };
    if (known !== undefined) {
      const body = toAggregateDocument(doc, nowSeconds());
      const abortSignal = options?.abortSignal;
      try {
        const response = await this.call(`put ${key(doc.pk, doc.sk)}`, options, () =>
          known === null
            ? this.aggregates.items.create(body, { abortSignal })
            : this.aggregates.item(body.id, doc.pk).replace(body, { accessCondition: { type: 'IfMatch', condition: known }, abortSignal }),
        );
        return { written: true, etag: response.etag, created: known === null };
      } catch (err) {
        const status = statusOf(err) ?? statusOf((err as { cause?: unknown }).cause);
        if (status !== 404 && status !== 409 && status !== 412) throw err;
        // Not what the caller thought: read what is there and decide.
      }
    }
    return this.readThenPut(doc, options, known === undefined);
  }

  /**
   * The read-then-conditional-write of `putIfNewer`, with the etag of what it wrote; `patchFirst`: its first
   * attempt is one conditional patch instead, and only when that is refused does it read.
   */
  private async readThenPut(doc: OpaqueData, options?: OperationOptions, patchFirst = false): Promise<TrackedPut> {
    const what = `put ${key(doc.pk, doc.sk)}`;
    const item = this.aggregates.item(documentIdForSortKey(doc.sk), doc.pk);
    const abortSignal = options?.abortSignal;
    // Writes that failed: the service may have applied them all the same (a lost answer, or a write the SDK
    // retried itself meeting its own first attempt).
    const failedWrites: AggregateDocument[] = [];
    // A transient failure of the read or the write runs the whole read-then-write again: the read decides.
    return this.call(what, options, async (run) => {
      // After a transient failure (run 2 on), the read decides: the patch may have landed all the same.
      if (patchFirst && run === 1) {
        const body = toAggregateDocument(doc, nowSeconds());
        const patch = conditionalPatch(body);
        if (patch) {
          try {
            const response = await item.patch(patch, { abortSignal });
            return { written: true, etag: response.etag, created: false };
          } catch (err) {
            // 412: the stored version is not older, or it holds a field ours lacks; 404: none stored. The
            // read-then-write sorts both out.
            const status = statusOf(err);
            if (status !== 404 && status !== 412) {
              failedWrites.push(body);
              throw err;
            }
          }
        }
      }
      for (let attempt = 1; ; attempt++) {
        const now = nowSeconds();
        const { resource, statusCode, substatus } = await item.read<AggregateDocument & { _etag: string }>({ abortSignal });
        if (statusCode === 404 && substatus === MISSING_CONTAINER) throw this.missingContainer(what);
        if (resource && !isExpired(resource.t, now) && (resource.version ?? 0) >= (doc.version ?? 0)) {
          // Never older over newer; ours when the stored document is exactly one we sent.
          // Ours after a lost answer: whether that write created the document is not known.
          const ours = failedWrites.some((sent) => isStoredAsSent(resource, sent));
          return ours ? { written: true, etag: resource._etag } : { written: false };
        }
        const body = toAggregateDocument(doc, now);
        try {
          // Create fails with 409 and an etag-checked replace with 412 when another writer got in between.
          const response = resource
            ? await item.replace(body, { accessCondition: { type: 'IfMatch', condition: resource._etag }, abortSignal })
            : await this.aggregates.items.create(body, { abortSignal });
          return { written: true, etag: response.etag, created: !resource };
        } catch (err) {
          failedWrites.push(body);
          const status = statusOf(err);
          if ((status === 409 || status === 412) && attempt < MAX_CONDITIONAL_ATTEMPTS) continue;
          throw err;
        }
      }
    }, 'putIfNewer');
  }

  async get(pk: string, sk: string, options?: OperationOptions): Promise<OpaqueData> {
    checkSignal(options);
    checkKeys(pk, sk);
    if (BodyAddressedDocuments.handles(sk)) return this.call(`get ${key(pk, sk)}`, options, () => this.byBody.get(pk, sk, options?.abortSignal));
    // A missing item resolves with status 404 and no resource rather than throwing; so does a missing container.
    const { resource, statusCode, substatus } = await this.call(`get ${key(pk, sk)}`, options, () =>
      this.aggregates.item(documentIdForSortKey(sk), pk).read<AggregateDocument>({ abortSignal: options?.abortSignal }),
    );
    if (statusCode === 404 && substatus === MISSING_CONTAINER) throw this.missingContainer(`get ${key(pk, sk)}`);
    if (!resource || isExpired(resource.t, nowSeconds())) throw new NotFoundError(`no aggregate at ${key(pk, sk)}`);
    return fromAggregateDocument(resource);
  }

  async delete(pk: string, sk: string, options?: OperationOptions): Promise<void> {
    checkSignal(options);
    checkKeys(pk, sk);
    const what = `delete ${key(pk, sk)}`;
    if (BodyAddressedDocuments.handles(sk)) return this.call(what, options, () => this.byBody.delete(pk, sk, options?.abortSignal));
    await this.call(what, options, async () => {
      try {
        await this.aggregates.item(documentIdForSortKey(sk), pk).delete({ abortSignal: options?.abortSignal });
      } catch (err) {
        if (statusOf(err) !== 404) throw err;
        if (substatusOf(err) === MISSING_CONTAINER) throw this.missingContainer(what);
        // Nothing there: deleted by another, or by our own earlier attempt whose answer was lost.
      }
    });
  }

  async query(query: OpaqueQuery, options?: OperationOptions): Promise<OpaqueQueryResult> {
    checkSignal(options);
    const index = validateQuery(query);
    const fields = index === 0 ? ({ pk: 'pk', sk: 'sk' } as const) : GSI_FIELDS[index];
    const now = nowSeconds();
    const parameters: SqlParameter[] = [
      { name: '@pk', value: query.pk },
      { name: '@now', value: now },
    ];
    let where = `c.${fields.pk} = @pk AND (NOT IS_DEFINED(c.t) OR c.t = 0 OR c.t > @now)`;
    if (query.sk) {
      where += ` AND ${SORT_SQL[query.sk.op](fields.sk)}`;
      parameters.push({ name: '@v', value: query.sk.value });
      if (query.sk.op === 'between') parameters.push({ name: '@v2', value: query.sk.value2 as string });
    }
    // Pages are cut by key, not by the SDK's continuation token: real Cosmos DB runs a cross-partition
    // ORDER BY through the SDK's query-plan pipeline, which gives no token to resume from unless
    // enableQueryControl is on, and this embedded server cannot exercise that path. Resuming "at or after the
    // last sort key, skipping the items of that key already returned" needs only a single-property ORDER BY.
    const after = query.continuationToken === undefined ? undefined : decodeToken(query.continuationToken);
    if (after) {
      where += ` AND c.${fields.sk} >= @after`;
      parameters.push({ name: '@after', value: after.sk });
    }
    const limit = query.limit ?? Infinity;
    const feedOptions: FeedOptions = {
      // One item more than the page, to know whether another page follows.
      maxItemCount: query.limit === undefined ? -1 : Math.min(query.limit + (after?.skip ?? 0) + 1, MAX_PAGE_SIZE),
      abortSignal: options?.abortSignal,
    };
    // The main key is one partition; a secondary index spans them all.
    if (index === 0) feedOptions.partitionKey = query.pk;
    const docs: AggregateDocument[] = [];
    let more = false;
    // A read changes nothing: on a transient failure the query runs again from the start of this page.
    await this.call(`query index ${index} pk ${JSON.stringify(query.pk)}`, options, async () => {
      // Fresh options: the SDK writes its page continuation into the options it is given, and a retry must
      // start again from the first page, not from the one that failed.
      const iterator = this.aggregates.items.query<AggregateDocument>(
        { query: `SELECT * FROM c WHERE ${where} ORDER BY c.${fields.sk} ASC`, parameters },
        { ...feedOptions },
      );
      docs.length = 0;
      more = false;
      let skip = after?.skip ?? 0;
      while (iterator.hasMoreResults()) {
        const page = await iterator.fetchNext();
        for (const doc of page.resources ?? []) {
          if (isExpired(doc.t, now)) continue;
          if (skip > 0 && doc[fields.sk] === after?.sk) {
            skip--;
          } else if (docs.length === limit) {
            more = true;
            return;
          } else {
            docs.push(doc);
          }
        }
      }
    });
    const items = docs.map(fromAggregateDocument);
    if (!more) return { items };
    // The next page starts at the last sort key returned, past the items of that key seen so far.
    const last = docs[docs.length - 1][fields.sk] as string;
    const seenOfLast = docs.filter((doc) => doc[fields.sk] === last).length + (last === after?.sk ? after.skip : 0);
    return { items, continuationToken: encodeToken({ sk: last, skip: seenOfLast }) };
  }

  private missingContainer(what: string): EventStoreError {
    return new EventStoreError(`${what} failed: container ${JSON.stringify(this.aggregates.id)} does not exist`);
  }

  /** `fn` (given its run number, from 1) retried on transient failures, in a span; its last failure an `EventStoreError` "`what` failed". */
  private call<T>(what: string, options: OperationOptions | undefined, fn: (run: number) => Promise<T>, op?: StoreOperation): Promise<T> {
    return traceStore(this.aggregates, op ?? (what.split(' ')[0] as StoreOperation), {}, () => retryTransient(what, this.retries, options?.abortSignal, fn));
  }
}

/**
 * One patch that turns a stored document into `body` when the stored version is older (or absent), else
 * undefined (the patch would take more operations than Cosmos DB allows, or `body` has no version to order
 * by). It sets every field of `body` but the keys (the id and partition fix them) and requires every field
 * `body` lacks to be absent from the stored one, so what it leaves is `body` field for field: a stored
 * document with a field to remove (a slot or expiry that went) is refused (412) and replaced whole by the
 * read-then-write. The condition takes no parameters: the version is written in as a number.
 */
function conditionalPatch(body: AggregateDocument): PatchRequestBody | undefined {
  if (!Number.isSafeInteger(body.version)) return undefined;
  const operations: PatchOperation[] = Object.entries(body)
    .filter(([name]) => name !== 'id' && name !== 'pk' && name !== 'sk')
    .map(([name, value]) => ({ op: 'set', path: `/${name}`, value: value as unknown }));
  if (operations.length > MAX_PATCH_OPERATIONS) return undefined;
  const absent = OPTIONAL_FIELDS.filter((name) => !(name in body)).map((name) => ` AND NOT IS_DEFINED(c.${name})`);
  return {
    condition: `FROM c WHERE (NOT IS_DEFINED(c.version) OR c.version < ${String(body.version)})${absent.join('')}`,
    operations,
  };
}

/** Whether a stored document holds exactly the fields of one we sent (the service adds only `_` fields). */
function isStoredAsSent(stored: AggregateDocument, sent: AggregateDocument): boolean {
  const fields = (doc: AggregateDocument) =>
    JSON.stringify(Object.entries(doc).filter(([name]) => !name.startsWith('_')).sort(([a], [b]) => (a < b ? -1 : 1)));
  return fields(stored) === fields(sent);
}

// Tokens carry a mark so one this store did not issue is refused before any request.
const TOKEN_MARK = 'cosmos-opaque-store/2';

interface Position {
  sk: string;
  skip: number;
}

function encodeToken({ sk, skip }: Position): string {
  return Buffer.from(JSON.stringify([TOKEN_MARK, sk, skip])).toString('base64url');
}

function decodeToken(value: string): Position {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
    if (
      Array.isArray(parsed) &&
      parsed.length === 3 &&
      parsed[0] === TOKEN_MARK &&
      typeof parsed[1] === 'string' &&
      Number.isSafeInteger(parsed[2]) &&
      parsed[2] >= 0
    ) {
      return { sk: parsed[1], skip: parsed[2] };
    }
  } catch {
    // fall through
  }
  throw new ValidationError('continuationToken', 'is not a token returned by this store');
}

function key(pk: string, sk: string): string {
  return `(pk ${JSON.stringify(pk)}, sk ${JSON.stringify(sk)})`;
}
