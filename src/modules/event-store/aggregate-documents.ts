import { gunzipSync, gzipSync } from 'node:zlib';
import {
  SORT_OPERATORS,
  type GsiSlots,
  type Materializable,
  type OpaqueData,
  type OpaqueQuery,
  type SortCondition,
} from './event-store.interfaces.js';
import { ValidationError } from './event-store.errors.js';
import { MAX_DOCUMENT_BYTES, MAX_ID_BYTES, NUM_GSI } from './cosmos-limits.js';
import { checkExpiry, checkPartitionKey, checkSeconds, ttlUntil } from './validation.js';

/** A document of the aggregates container (SPEC §4). `gsiNpk`/`gsiNsk` are the slot fields. */
export interface AggregateDocument {
  id: string;
  pk: string;
  sk: string;
  /** Omitted when the body is empty, as Go omits it. */
  body?: string;
  t?: number;
  ttl?: number;
  version?: number;
  [slotField: `gsi${number}${'pk' | 'sk'}`]: string | undefined;
}

/** Slot field names by slot number, fixed here so no attribute name ever comes from user input. */
export const GSI_FIELDS: ReadonlyArray<{ pk: `gsi${number}pk`; sk: `gsi${number}sk` }> = Array.from(
  { length: NUM_GSI + 1 },
  (_, n) => ({ pk: `gsi${n}pk` as const, sk: `gsi${n}sk` as const }),
);

const NA = 'NA';
const ID_ESCAPES: Record<string, string> = { '/': '%2F', '\\': '%5C', '?': '%3F', '#': '%23', '%': '%25' };
// A `%` followed by one of the codes above: a sort key holding such a sequence is encoded, so no raw id ever
// reads as an encoded one.
const ESCAPE_LIKE = /%(?:2F|5C|3F|23|25)/i;

/**
 * The document id for a sort key. It is the sort key itself, as protosource's Go store writes it (`AGG`,
 * `PROJ#OrderSummary`), except when the sort key holds `/` or `\` or a `%` that reads as an escape: then
 * `/ \ %` are percent-encoded (`%2F %5C %25`) and `? #` stay as they are. Cosmos DB cannot address an item
 * whose id holds `/` or `\` by its URL (not even Go can read one back), so those are encoded, and encoding the
 * escape-like `%` keeps the mapping one-to-one. Ids holding `#` or `?` are stored raw and reached through
 * transactional batches and queries, which carry the id in the request body, never in a URL (the SDK
 * refuses them in item URLs).
 */
export function documentIdForSortKey(sk: string): string {
  return /[/\\]/.test(sk) || ESCAPE_LIKE.test(sk) ? sk.replace(/[/\\%]/g, (c) => ID_ESCAPES[c]) : sk;
}

/**
 * The ids a document for this sort key may have been stored under: ours, the one earlier versions of this
 * package wrote (all of `/ \ ? # %` percent-encoded whenever one was present) and the raw sort key a Go
 * writer uses. One id when they agree, as they do for every sort key without `/ \ ? # %`.
 */
export function candidateDocumentIds(sk: string): string[] {
  const earlier = /[/\\?#%]/.test(sk) ? sk.replace(/[/\\?#%]/g, (c) => ID_ESCAPES[c]) : sk;
  return [...new Set([documentIdForSortKey(sk), earlier, sk])];
}

/** True when an id cannot travel in an item URL (the SDK refuses `#` there, and `?` would start a query string). */
export function idNeedsBody(id: string): boolean {
  return /[?#]/.test(id);
}

function checkSlotNumber(field: string, slot: number): void {
  if (!Number.isInteger(slot) || slot < 1 || slot > NUM_GSI) {
    throw new ValidationError(field, `secondary-index slot must be an integer from 1 to ${NUM_GSI}, got ${String(slot)}`);
  }
}

function checkKeyString(field: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'string') throw new ValidationError(field, 'must be a string');
  if (typeof value === 'string' && !value.isWellFormed()) {
    throw new ValidationError(field, 'must be well-formed Unicode (no lone surrogates)');
  }
}

function checkGsi(gsi: GsiSlots | undefined): void {
  if (gsi === undefined) return;
  if (gsi === null || typeof gsi !== 'object') throw new ValidationError('gsi', 'must be an object of slots 1-20');
  for (const [key, slot] of Object.entries(gsi)) {
    // '01' or ' 1' pass Number() but are never read back as slot 1: the slot would be silently dropped.
    if (String(Number(key)) !== key) {
      throw new ValidationError(`gsi.${key}`, `secondary-index slot must be an integer from 1 to ${NUM_GSI}, got ${JSON.stringify(key)}`);
    }
    checkSlotNumber(`gsi.${key}`, Number(key));
    if (slot === undefined) continue;
    if (slot === null || typeof slot !== 'object') throw new ValidationError(`gsi.${key}`, 'must be { pk?, sk? }');
    checkKeyString(`gsi.${key}.pk`, slot.pk);
    checkKeyString(`gsi.${key}.sk`, slot.sk);
  }
}

/** Keys of the aggregates container: a partition key and a sort key that makes a valid id. */
export function checkKeys(pk: unknown, sk: unknown): void {
  checkPartitionKey('pk', pk);
  if (typeof sk !== 'string' || sk.length === 0) throw new ValidationError('sk', 'must be a non-empty string');
  checkKeyString('sk', sk);
  // @azure/cosmos refuses to address an item whose id is only white space (its check is /^\s*$/): such a
  // document could be written but never read or deleted by key.
  if (/^\s*$/.test(sk)) throw new ValidationError('sk', 'must contain a character other than white space');
  // The id is a segment of the item's URL, and URLs resolve "." and ".." away: a get of ".." would read the
  // container and a delete of ".." delete it.
  if (sk === '.' || sk === '..') throw new ValidationError('sk', `cannot be ${JSON.stringify(sk)}: a URL resolves it as a relative path`);
  const idBytes = Buffer.byteLength(documentIdForSortKey(sk), 'utf8');
  if (idBytes > MAX_ID_BYTES) {
    throw new ValidationError('sk', `makes a ${idBytes}-byte document id; Cosmos DB allows at most ${MAX_ID_BYTES}`);
  }
}

export function validateOpaqueData(doc: OpaqueData): void {
  if (doc === null || typeof doc !== 'object') throw new ValidationError('doc', 'must be an OpaqueData object');
  checkKeys(doc.pk, doc.sk);
  if (!(doc.body instanceof Uint8Array)) throw new ValidationError('body', 'must be a Uint8Array');
  if (doc.version !== undefined && (!Number.isSafeInteger(doc.version) || doc.version < 0)) {
    throw new ValidationError('version', 'must be a non-negative safe integer');
  }
  checkExpiry('t', doc.t);
  checkGsi(doc.gsi);
}

/** Builds the stored document, applying the slot rule of SPEC §4; refuses one over the item limit. */
export function toAggregateDocument(doc: OpaqueData, now: number): AggregateDocument {
  const out: AggregateDocument = {
    id: documentIdForSortKey(doc.sk),
    pk: doc.pk,
    sk: doc.sk,
  };
  if (doc.body.byteLength > 0) out.body = Buffer.from(doc.body.buffer, doc.body.byteOffset, doc.body.byteLength).toString('base64');
  if (doc.t && doc.t > 0) {
    out.t = doc.t;
    out.ttl = ttlUntil('t', doc.t, now);
  }
  if (doc.version) out.version = doc.version;
  for (let n = 1; n <= NUM_GSI; n++) {
    const slot = doc.gsi?.[n];
    if (!slot) continue;
    const { pk = '', sk = '' } = slot;
    if (pk !== '' && pk !== NA) {
      out[GSI_FIELDS[n].pk] = pk;
      out[GSI_FIELDS[n].sk] = sk === '' ? NA : sk;
    } else if (sk !== '' && sk !== NA) {
      // A slot whose pk is empty or NA keeps its sk alone, as Go writes it.
      out[GSI_FIELDS[n].sk] = sk;
    }
  }
  const bytes = Buffer.byteLength(JSON.stringify(out));
  if (bytes > MAX_DOCUMENT_BYTES) {
    throw new ValidationError('body', `makes a ${bytes}-byte document; Cosmos DB items are limited to 2 MB`);
  }
  return out;
}

export function fromAggregateDocument(doc: AggregateDocument): OpaqueData {
  const body = Buffer.from(doc.body ?? '', 'base64');
  const out: OpaqueData = { pk: doc.pk, sk: doc.sk, body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength) };
  if (doc.version) out.version = doc.version;
  if (doc.t) out.t = doc.t;
  for (let n = 1; n <= NUM_GSI; n++) {
    const pk = doc[GSI_FIELDS[n].pk];
    const sk = doc[GSI_FIELDS[n].sk];
    if (pk === undefined && sk === undefined) continue;
    out.gsi ??= {};
    out.gsi[n] = { ...(pk !== undefined && { pk }), ...(sk !== undefined && { sk }) };
  }
  return out;
}

export function isExpired(t: number | undefined, now: number): boolean {
  return t !== undefined && t > 0 && t <= now;
}


/** Checks a query before any request; returns the index number (0 when absent). */
export function validateQuery(query: OpaqueQuery): number {
  if (query === null || typeof query !== 'object') throw new ValidationError('query', 'must be an OpaqueQuery object');
  const index = query.index ?? 0;
  if (!Number.isInteger(index) || index < 0 || index > NUM_GSI) {
    throw new ValidationError('index', `must be an integer from 0 (main key) to ${NUM_GSI}, got ${String(query.index)}`);
  }
  if (index === 0) checkPartitionKey('pk', query.pk);
  else if (typeof query.pk !== 'string' || query.pk.length === 0) throw new ValidationError('pk', 'must be a non-empty string');
  if (query.sk !== undefined) checkSortCondition(query.sk);
  if (query.limit !== undefined && (!Number.isSafeInteger(query.limit) || query.limit < 1)) {
    throw new ValidationError('limit', 'must be a positive integer');
  }
  if (query.continuationToken !== undefined && (typeof query.continuationToken !== 'string' || query.continuationToken === '')) {
    throw new ValidationError('continuationToken', 'must be a token returned by an earlier query');
  }
  return index;
}

function checkSortCondition(sk: SortCondition): void {
  if (sk === null || typeof sk !== 'object') throw new ValidationError('sk', 'must be a SortCondition');
  if (!(SORT_OPERATORS as readonly string[]).includes(sk.op)) {
    throw new ValidationError('sk.op', `must be one of ${SORT_OPERATORS.join(' ')}, got ${String(sk.op)}`);
  }
  if (typeof sk.value !== 'string') throw new ValidationError('sk.value', 'must be a string');
  if (sk.op === 'between' && typeof sk.value2 !== 'string') {
    throw new ValidationError('sk.value2', 'is required by between (the upper bound, inclusive)');
  }
}

/** True when a sort key satisfies the condition, with the comparisons Cosmos DB applies to strings. */
export function matchesSortCondition(value: string | undefined, cond: SortCondition | undefined): boolean {
  if (!cond) return true;
  if (value === undefined) return false;
  switch (cond.op) {
    case '=':
      return value === cond.value;
    case '<':
      return value < cond.value;
    case '<=':
      return value <= cond.value;
    case '>':
      return value > cond.value;
    case '>=':
      return value >= cond.value;
    case 'between':
      return value >= cond.value && value <= (cond.value2 as string);
    case 'begins_with':
      return value.startsWith(cond.value);
  }
}

const GZIP_MAGIC_0 = 0x1f;
const GZIP_MAGIC_1 = 0x8b;

/** The bytes gzip-compressed when there are at least `threshold` of them, else as they are; a threshold of 0 (or less) means never, as in protosource. */
export function compressAtOrAbove(bytes: Uint8Array, threshold: number): Uint8Array {
  return threshold > 0 && bytes.length >= threshold ? gzipSync(bytes) : bytes;
}

/** Reverses `compressAtOrAbove`: gunzips when the bytes start with the gzip magic bytes, whatever the threshold was. */
export function decompressIfGzipped(bytes: Uint8Array): Buffer {
  const gzipped = bytes.length >= 2 && bytes[0] === GZIP_MAGIC_0 && bytes[1] === GZIP_MAGIC_1;
  return gzipped ? gunzipSync(bytes) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** UTF-8 JSON of the aggregate (its `toJSON` honoured), gzip-compressed at or above `compressThreshold` bytes. */
export function encodeAggregateBody(aggregate: Materializable, compressThreshold: number): Uint8Array {
  const json = JSON.stringify(aggregate);
  if (json === undefined) throw new ValidationError('aggregate', 'does not serialize to JSON');
  return compressAtOrAbove(Buffer.from(json, 'utf8'), compressThreshold);
}

/** Reverses `encodeAggregateBody`: gunzips when the body starts with the gzip magic bytes, then parses. */
export function decodeAggregateBody(body: Uint8Array): unknown {
  return JSON.parse(decompressIfGzipped(body).toString('utf8'));
}

/** Turns an aggregate into the document `saveAggregate` stores (SPEC §4). */
export function materialize(aggregate: Materializable, compressThreshold: number, now: number): OpaqueData {
  if (aggregate === null || typeof aggregate !== 'object' || typeof aggregate.keys !== 'function') {
    throw new ValidationError('aggregate', 'must implement keys()');
  }
  const keys = aggregate.keys();
  if (keys === null || typeof keys !== 'object') throw new ValidationError('aggregate.keys()', 'must return { pk, sk, gsi? }');
  checkSeconds('aggregate.ttlSeconds', aggregate.ttlSeconds);
  const doc: OpaqueData = { pk: keys.pk, sk: keys.sk, body: encodeAggregateBody(aggregate, compressThreshold) };
  if (keys.gsi) doc.gsi = keys.gsi;
  if (aggregate.version) doc.version = aggregate.version;
  if (aggregate.ttlSeconds) doc.t = now + aggregate.ttlSeconds;
  validateOpaqueData(doc);
  return doc;
}

