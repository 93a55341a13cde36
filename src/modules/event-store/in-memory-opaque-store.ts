import type { OpaqueData, OpaqueQuery, OpaqueQueryResult, OpaqueStore, OperationOptions } from './event-store.interfaces.js';
import { NotFoundError, ValidationError } from './event-store.errors.js';
import {
  checkKeys,
  documentIdForSortKey,
  fromAggregateDocument,
  GSI_FIELDS,
  isExpired,
  matchesSortCondition,
  toAggregateDocument,
  validateOpaqueData,
  validateQuery,
  type AggregateDocument,
} from './aggregate-documents.js';
import { nowSeconds } from './event-documents.js';
import { checkSignal } from './validation.js';

type Position = [sortKey: string, pk: string, id: string];

/** The opaque store's contract in memory, storing the same documents `CosmosOpaqueStore` writes. For unit tests. */
export class InMemoryOpaqueStore implements OpaqueStore {
  private readonly docs = new Map<string, AggregateDocument>();

  async put(doc: OpaqueData, options?: OperationOptions): Promise<void> {
    checkSignal(options);
    validateOpaqueData(doc);
    const stored = toAggregateDocument(doc, nowSeconds());
    this.docs.set(slot(stored.pk, stored.id), stored);
  }

  async putIfNewer(doc: OpaqueData, options?: OperationOptions): Promise<boolean> {
    checkSignal(options);
    validateOpaqueData(doc);
    const now = nowSeconds();
    const stored = toAggregateDocument(doc, now);
    const current = this.docs.get(slot(stored.pk, stored.id));
    if (current && !isExpired(current.t, now) && (current.version ?? 0) >= (doc.version ?? 0)) return false;
    this.docs.set(slot(stored.pk, stored.id), stored);
    return true;
  }

  async get(pk: string, sk: string, options?: OperationOptions): Promise<OpaqueData> {
    checkSignal(options);
    checkKeys(pk, sk);
    const doc = this.docs.get(slot(pk, documentIdForSortKey(sk)));
    if (!doc || isExpired(doc.t, nowSeconds())) {
      throw new NotFoundError(`no aggregate at (pk ${JSON.stringify(pk)}, sk ${JSON.stringify(sk)})`);
    }
    return fromAggregateDocument(doc);
  }

  async delete(pk: string, sk: string, options?: OperationOptions): Promise<void> {
    checkSignal(options);
    checkKeys(pk, sk);
    this.docs.delete(slot(pk, documentIdForSortKey(sk)));
  }

  async query(query: OpaqueQuery, options?: OperationOptions): Promise<OpaqueQueryResult> {
    checkSignal(options);
    const index = validateQuery(query);
    const fields = index === 0 ? { pk: 'pk' as const, sk: 'sk' as const } : GSI_FIELDS[index];
    const now = nowSeconds();
    const position = (doc: AggregateDocument): Position => [doc[fields.sk] as string, doc.pk, doc.id];
    const matching = [...this.docs.values()]
      .filter((doc) => doc[fields.pk] === query.pk && !isExpired(doc.t, now))
      .filter((doc) => doc[fields.sk] !== undefined && matchesSortCondition(doc[fields.sk], query.sk))
      .sort((x, y) => compare(position(x), position(y)));
    const after = query.continuationToken === undefined ? undefined : decodeToken(query.continuationToken);
    const rest = after ? matching.filter((doc) => compare(position(doc), after) > 0) : matching;
    const page = query.limit === undefined ? rest : rest.slice(0, query.limit);
    const items = page.map(fromAggregateDocument);
    if (page.length === rest.length) return { items };
    return { items, continuationToken: Buffer.from(JSON.stringify(position(page[page.length - 1]))).toString('base64url') };
  }
}

function slot(pk: string, id: string): string {
  return JSON.stringify([pk, id]);
}

function compare(x: Position, y: Position): number {
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  return 0;
}

function decodeToken(token: string): Position {
  try {
    const position: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (Array.isArray(position) && position.length === 3 && position.every((p) => typeof p === 'string')) {
      return position as Position;
    }
  } catch {
    // fall through
  }
  throw new ValidationError('continuationToken', 'is not a token returned by this store');
}
