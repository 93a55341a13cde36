import type { SchemaObject } from '@nestjs/swagger';
import { acceptToken, integerParam, pageLimit, queryParams, type QueryParams } from '../../http/request-input.js';
import {
  decodeAggregateBody,
  SORT_OPERATORS,
  ValidationError,
  type EventRecord,
  type GsiSlots,
  type OpaqueData,
  type OpaqueQuery,
  type SortOperator,
} from 'nest-cosmos-eventstore';

/**
 * An event record on the wire: `data` is standard base64 with padding, `ttl` an absolute expiry (epoch
 * seconds, in the future: the store refuses one already reached).
 */
export interface RecordDto {
  version: number;
  data: string;
  ttl?: number;
}

/** The body of `POST /aggregates/:id/events` and the answer of `GET /aggregates/:id/events`. */
export interface RecordsDto {
  records: RecordDto[];
}

/**
 * A materialized document on the wire. `body` is the stored body decoded as JSON (gunzipped when compressed);
 * a body that is not JSON (bytes another writer stored through the opaque store) comes as `bodyBase64` instead.
 */
export interface MaterializedDto {
  pk: string;
  sk: string;
  version?: number;
  t?: number;
  gsi?: GsiSlots;
  body?: unknown;
  bodyBase64?: string;
}

/** The answer of `GET /materialized?...`. */
export interface MaterializedPageDto {
  items: MaterializedDto[];
  continuationToken?: string;
}

export type { QueryParams } from '../../http/request-input.js';

// One flat character class, no nested group: a repeated group (`(?:[...]{4})*`) makes V8's regexp engine
// recurse per repetition and overflow its stack on input of about 5 MB. The length and the round trip below
// refuse what this lets through (misplaced padding, a length that is not a multiple of 4).
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const RECORD_FIELDS = new Set(['version', 'data', 'ttl']);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Standard base64 with padding, as Go's encoding/json writes `[]byte`; `Buffer.from` alone would skip
 * invalid characters and accept base64url, silently storing other bytes than the client meant.
 */
export function decodeBase64(field: string, value: unknown): Uint8Array {
  if (typeof value !== 'string') throw new ValidationError(field, 'must be a base64 string');
  const bytes = value.length % 4 === 0 && BASE64.test(value) ? Buffer.from(value, 'base64') : undefined;
  // The round trip refuses non-zero padding bits, the last ambiguity the pattern lets through.
  if (!bytes || bytes.toString('base64') !== value) {
    throw new ValidationError(field, 'must be standard base64 with padding (A-Z a-z 0-9 + /, then = or ==)');
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Records of one raw append: one Cosmos DB transactional batch, so a request is stored all or none. */
export const MAX_RECORDS_PER_APPEND = 100;

/** Checks the shape of an append request and decodes it; the store checks the values (versions, ttl, sizes). */
export function parseAppendRequest(body: unknown): EventRecord[] {
  if (!isPlainObject(body)) {
    throw new ValidationError('body', 'must be a JSON object { records: [...] } sent with content-type application/json');
  }
  const unknown = Object.keys(body).filter((k) => k !== 'records');
  if (unknown.length > 0) throw new ValidationError(unknown[0], 'is not a field of the request; send { records: [...] }');
  if (!Array.isArray(body.records)) throw new ValidationError('records', 'must be an array of { version, data, ttl? }');
  if (body.records.length > MAX_RECORDS_PER_APPEND) {
    throw new ValidationError(
      'records',
      `holds ${body.records.length} records; at most ${MAX_RECORDS_PER_APPEND} per request, which is stored all or none (one transactional batch)`,
    );
  }
  return body.records.map((item: unknown, i) => {
    const field = `records[${i}]`;
    if (!isPlainObject(item)) throw new ValidationError(field, 'must be an object { version, data, ttl? }');
    const extra = Object.keys(item).find((k) => !RECORD_FIELDS.has(k));
    if (extra !== undefined) throw new ValidationError(`${field}.${extra}`, 'is not a field of a record (version, data, ttl)');
    if (typeof item.version !== 'number') throw new ValidationError(`${field}.version`, 'must be a positive integer');
    const record: EventRecord = { version: item.version, data: decodeBase64(`${field}.data`, item.data) };
    if (item.ttl !== undefined) {
      if (typeof item.ttl !== 'number') {
        throw new ValidationError(`${field}.ttl`, 'must be a number: an absolute expiry in epoch seconds, 0 for none');
      }
      record.ttl = item.ttl;
    }
    return record;
  });
}

/** `?tail=N` of `GET /aggregates/:id/events`: `undefined` for the whole stream. */
export function parseTail(params: QueryParams): number | undefined {
  return integerParam('tail', queryParams(params, ['tail']).tail, 0);
}

/** A parsed `GET /materialized` query, with the scope its continuation tokens are bound to. */
export interface MaterializedQuery {
  query: OpaqueQuery;
  /** What the query asks, limit aside: `issueToken`/`acceptToken` bind tokens to it. */
  scope: readonly unknown[];
}

/**
 * `GET /materialized?index=&pk=&op=&value=&value2=&limit=&continuationToken=` as an `OpaqueQuery`: `limit`
 * 1 to 1000 (default 50), a `continuationToken` only from a page of the same query.
 */
export function parseMaterializedQuery(params: QueryParams): MaterializedQuery {
  const { pk, index: indexText, limit, continuationToken, op, value, value2 } = queryParams(params, [
    'index',
    'pk',
    'op',
    'value',
    'value2',
    'limit',
    'continuationToken',
  ]);
  if (pk === undefined) throw new ValidationError('pk', 'is required: the partition key (index 0) or slot key to query');
  const index = integerParam('index', indexText, 0) ?? 0;
  const scope = ['materialized', index, pk, op ?? null, value ?? null, value2 ?? null];
  const query: OpaqueQuery = { pk, index, limit: pageLimit(limit) };
  const storeToken = acceptToken(scope, continuationToken);
  if (storeToken !== undefined) query.continuationToken = storeToken;
  if (op === undefined) {
    if (value !== undefined || value2 !== undefined) throw new ValidationError('op', `is required with value; one of ${SORT_OPERATORS.join(' ')}`);
    return { query, scope };
  }
  if (!(SORT_OPERATORS as readonly string[]).includes(op)) {
    throw new ValidationError('op', `must be one of ${SORT_OPERATORS.join(' ')}`);
  }
  if (value === undefined) throw new ValidationError('value', `is required with op ${op}`);
  if (op === 'between') {
    if (value2 === undefined) throw new ValidationError('value2', 'is required with op between (the inclusive upper bound)');
    query.sk = { op, value, value2 };
  } else {
    if (value2 !== undefined) throw new ValidationError('value2', 'is only used with op between');
    query.sk = { op: op as SortOperator, value };
  }
  return { query, scope };
}

/** A stored record as the API answers it. */
export function toRecordDto(record: EventRecord): RecordDto {
  const dto: RecordDto = { version: record.version, data: Buffer.from(record.data).toString('base64') };
  if (record.ttl) dto.ttl = record.ttl;
  return dto;
}

/** A materialized document as the API answers it. */
export function toMaterializedDto(doc: OpaqueData): MaterializedDto {
  const dto: MaterializedDto = { pk: doc.pk, sk: doc.sk };
  if (doc.version) dto.version = doc.version;
  if (doc.t) dto.t = doc.t;
  if (doc.gsi && Object.keys(doc.gsi).length > 0) dto.gsi = doc.gsi;
  try {
    dto.body = decodeAggregateBody(doc.body);
  } catch {
    dto.bodyBase64 = Buffer.from(doc.body).toString('base64');
  }
  return dto;
}

// ---- The OpenAPI description of the bodies above (see http/openapi.ts) ----

/** `RecordDto`. */
export const RECORD_SCHEMA: SchemaObject = {
  type: 'object',
  required: ['version', 'data'],
  additionalProperties: false,
  properties: {
    version: { type: 'integer', minimum: 1 },
    data: { type: 'string', format: 'byte', description: 'Standard base64 with padding' },
    ttl: { type: 'integer', description: 'Absolute expiry in epoch seconds (in the future), 0 or absent for none' },
  },
};

/** `RecordsDto`: the body of an append (at most `MAX_RECORDS_PER_APPEND` records) and the answer of a read. */
export const RECORDS_SCHEMA: SchemaObject = {
  type: 'object',
  required: ['records'],
  additionalProperties: false,
  properties: { records: { type: 'array', items: RECORD_SCHEMA, maxItems: MAX_RECORDS_PER_APPEND } },
};

/** `MaterializedDto`. */
export const MATERIALIZED_SCHEMA: SchemaObject = {
  type: 'object',
  required: ['pk', 'sk'],
  properties: {
    pk: { type: 'string' },
    sk: { type: 'string' },
    version: { type: 'integer' },
    t: { type: 'integer', description: 'Epoch time of the last change' },
    gsi: { type: 'object', additionalProperties: true, description: 'The index slots: `gsi1pk`, `gsi1sk`, ...' },
    body: { description: 'The stored body as JSON (gunzipped when compressed)' },
    bodyBase64: { type: 'string', format: 'byte', description: 'A body that is not JSON, in base64, instead of `body`' },
  },
};

/** `MaterializedPageDto`. */
export const MATERIALIZED_PAGE_SCHEMA: SchemaObject = {
  type: 'object',
  required: ['items'],
  properties: {
    items: { type: 'array', items: MATERIALIZED_SCHEMA },
    continuationToken: { type: 'string', description: 'There when more items follow: send it with the same query' },
  },
};
