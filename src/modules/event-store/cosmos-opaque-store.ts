import type { Container, FeedOptions, SqlParameter } from '@azure/cosmos';
import type {
  OpaqueData,
  OpaqueQuery,
  OpaqueQueryResult,
  OpaqueStore,
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
import { checkSignal } from './validation.js';
import { messageOf, statusOf, substatusOf } from '../cosmos/index.js';

// Sub-status of a 404 whose container (or database) is missing, as opposed to the item.
const MISSING_CONTAINER = 1003;
// maxItemCount is an int32 on the wire.
const MAX_PAGE_SIZE = 2_147_483_647;
// putIfNewer re-reads after each write it lost to a concurrent writer; each loss means another version was
// stored, so the loop ends quickly unless this many writers race on one document.
const MAX_CONDITIONAL_ATTEMPTS = 20;

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

/**
 * The aggregates container (partition key `/pk`) as protosource's opaque store: documents keyed by
 * `(pk, sk)` with 20 secondary-index slots.
 */
export class CosmosOpaqueStore implements OpaqueStore {
  constructor(private readonly aggregates: Container) {}

  async put(doc: OpaqueData, options?: OperationOptions): Promise<void> {
    checkSignal(options);
    validateOpaqueData(doc);
    const body = toAggregateDocument(doc, nowSeconds());
    await this.call(`put ${key(doc.pk, doc.sk)}`, options, () =>
      this.aggregates.items.upsert(body, { abortSignal: options?.abortSignal }),
    );
  }

  async putIfNewer(doc: OpaqueData, options?: OperationOptions): Promise<boolean> {
    checkSignal(options);
    validateOpaqueData(doc);
    const what = `put ${key(doc.pk, doc.sk)}`;
    const item = this.aggregates.item(documentIdForSortKey(doc.sk), doc.pk);
    const abortSignal = options?.abortSignal;
    for (let attempt = 1; ; attempt++) {
      const now = nowSeconds();
      const { resource, statusCode, substatus } = await this.call(what, options, () =>
        item.read<AggregateDocument & { _etag: string }>({ abortSignal }),
      );
      if (statusCode === 404 && substatus === MISSING_CONTAINER) throw this.missingContainer(what);
      if (resource && !isExpired(resource.t, now) && (resource.version ?? 0) >= (doc.version ?? 0)) return false;
      const body = toAggregateDocument(doc, now);
      try {
        // Create fails with 409 and an etag-checked replace with 412 when another writer got in between.
        if (resource) await item.replace(body, { accessCondition: { type: 'IfMatch', condition: resource._etag }, abortSignal });
        else await this.aggregates.items.create(body, { abortSignal });
        return true;
      } catch (err) {
        const status = statusOf(err);
        if ((status === 409 || status === 412) && attempt < MAX_CONDITIONAL_ATTEMPTS) continue;
        abortSignal?.throwIfAborted();
        throw new EventStoreError(`${what} failed: ${messageOf(err)}`, { cause: err });
      }
    }
  }

  async get(pk: string, sk: string, options?: OperationOptions): Promise<OpaqueData> {
    checkSignal(options);
    checkKeys(pk, sk);
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
    try {
      await this.aggregates.item(documentIdForSortKey(sk), pk).delete({ abortSignal: options?.abortSignal });
    } catch (err) {
      if (statusOf(err) === 404) {
        if (substatusOf(err) === MISSING_CONTAINER) throw this.missingContainer(`delete ${key(pk, sk)}`);
        return;
      }
      options?.abortSignal?.throwIfAborted();
      throw new EventStoreError(`delete ${key(pk, sk)} failed: ${messageOf(err)}`, { cause: err });
    }
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
    const iterator = this.aggregates.items.query<AggregateDocument>(
      { query: `SELECT * FROM c WHERE ${where} ORDER BY c.${fields.sk} ASC`, parameters },
      feedOptions,
    );
    const docs: AggregateDocument[] = [];
    let more = false;
    await this.call(`query index ${index} pk ${JSON.stringify(query.pk)}`, options, async () => {
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

  private async call<T>(what: string, options: OperationOptions | undefined, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      options?.abortSignal?.throwIfAborted();
      throw new EventStoreError(`${what} failed: ${messageOf(err)}`, { cause: err });
    }
  }
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
