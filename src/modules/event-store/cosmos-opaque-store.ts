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
    const fields = index === 0 ? { pk: 'pk', sk: 'sk' } : GSI_FIELDS[index];
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
    const feedOptions: FeedOptions = {
      maxItemCount: query.limit ?? -1,
      continuationToken: query.continuationToken === undefined ? undefined : decodeToken(query.continuationToken),
      abortSignal: options?.abortSignal,
    };
    // The main key is one partition; a secondary index spans them all.
    if (index === 0) feedOptions.partitionKey = query.pk;
    const iterator = this.aggregates.items.query<AggregateDocument>(
      { query: `SELECT * FROM c WHERE ${where} ORDER BY c.${fields.sk} ASC`, parameters },
      feedOptions,
    );
    const items: OpaqueData[] = [];
    let continuationToken: string | undefined;
    await this.call(`query index ${index} pk ${JSON.stringify(query.pk)}`, options, async () => {
      // Without a limit, read every page; with one, one page (a cross-partition page may hold fewer).
      do {
        const page = await iterator.fetchNext();
        for (const doc of page.resources ?? []) {
          if (!isExpired(doc.t, now)) items.push(fromAggregateDocument(doc));
        }
        continuationToken = page.continuationToken;
      } while (query.limit === undefined && iterator.hasMoreResults());
    });
    if (!continuationToken || !iterator.hasMoreResults()) return { items };
    return { items, continuationToken: encodeToken(continuationToken) };
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

// The SDK's continuation token travels wrapped, so a token this store did not issue is refused before any
// request: the embedded server ignores one it cannot parse and silently restarts from the first page.
const TOKEN_MARK = 'cosmos-opaque-store/1';

function encodeToken(token: string): string {
  return Buffer.from(JSON.stringify([TOKEN_MARK, token])).toString('base64url');
}

function decodeToken(value: string): string {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
    if (Array.isArray(parsed) && parsed.length === 2 && parsed[0] === TOKEN_MARK && typeof parsed[1] === 'string') {
      return parsed[1];
    }
  } catch {
    // fall through
  }
  throw new ValidationError('continuationToken', 'is not a token returned by this store');
}

function key(pk: string, sk: string): string {
  return `(pk ${JSON.stringify(pk)}, sk ${JSON.stringify(sk)})`;
}
