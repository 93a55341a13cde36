import type { EventRecord, EventRecordMetadata } from './event-store.interfaces.js';
import { ValidationError } from './event-store.errors.js';
import { MAX_BATCH_OPERATIONS, MAX_DOCUMENT_BYTES, MAX_REQUEST_BYTES } from './cosmos-limits.js';
import { checkPartitionKey, checkRecordExpiry, ttlUntil } from './validation.js';

/** An event as stored in the events container (SPEC §3), field for field what protosource writes. */
// A type alias rather than an interface, so it fits @azure/cosmos's JSONObject.
export type EventDocument = {
  id: string;
  a: string;
  v: number;
  d?: string;
  t?: number;
  ttl?: number;
  /** The event's type name (`EventRecord.type`): an addition to protosource's fields, which Go ignores. */
  y?: string;
  /** The event's ids (`EventRecord.metadata`): an addition to protosource's fields, which Go ignores. */
  m?: { eventId?: string; correlationId?: string; causationId?: string };
};

/** The fields `EventRecord.metadata` may hold. */
const METADATA_FIELDS = ['eventId', 'correlationId', 'causationId'] as const;
/** The longest id `EventRecord.metadata` takes. */
export const MAX_METADATA_ID_LENGTH = 128;

/**
 * The stored type of the tombstone `deleteStream` writes before it erases a stream: an event (numeric `v`,
 * the stream's last version + 1, no data) that subscribers recognise by this type in `EventRecord.type`.
 */
export const STREAM_DELETED_TYPE = '$stream-deleted';

/** The longest event type name `save` accepts, in UTF-8 bytes. */
export const MAX_EVENT_TYPE_BYTES = 256;

/** A document ready to send, with the bytes its batch operation takes in the request body. */
export interface PreparedEvent {
  record: EventRecord;
  doc: EventDocument;
  operationBytes: number;
}

// `{"operationType":"Create","resourceBody":` + document + `}`: the envelope @azure/cosmos sends per operation.
const CREATE_ENVELOPE_BYTES = Buffer.byteLength('{"operationType":"Create","resourceBody":}');

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * Rejects what Cosmos DB would refuse or store differently, before any request (SPEC §3), and a record
 * `ttl` not ahead of `now` (see `checkRecordExpiry`).
 */
export function validateRecords(aggregateId: string, records: readonly EventRecord[], now = nowSeconds()): void {
  checkPartitionKey('aggregateId', aggregateId);
  if (!Array.isArray(records)) throw new ValidationError('records', 'must be an array of EventRecord');
  const seen = new Set<number>();
  // An index loop, not forEach: forEach skips the holes of a sparse array, which would reach the chunker.
  for (let i = 0; i < records.length; i++) {
    const record = records[i];
    const field = `records[${i}]`;
    if (record === null || typeof record !== 'object') throw new ValidationError(field, 'must be an EventRecord');
    const { version, data, ttl } = record;
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
      throw new ValidationError(`${field}.version`, `must be a positive safe integer, got ${String(version)}`);
    }
    if (seen.has(version)) throw new ValidationError(`${field}.version`, `duplicates version ${version} in the same call`);
    seen.add(version);
    if (!(data instanceof Uint8Array)) throw new ValidationError(`${field}.data`, 'must be a Uint8Array');
    checkRecordExpiry(`${field}.ttl`, ttl, now);
    checkEventType(`${field}.type`, record.type);
    checkMetadata(`${field}.metadata`, record.metadata);
  }
}

/** Metadata: absent, or an object of the three ids, each a well-formed string of 1 to 128 characters. */
function checkMetadata(field: string, metadata: unknown): void {
  if (metadata === undefined) return;
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) throw new ValidationError(field, 'must be an object { eventId?, correlationId?, causationId? }');
  for (const [key, value] of Object.entries(metadata)) {
    if (!(METADATA_FIELDS as readonly string[]).includes(key)) throw new ValidationError(`${field}.${key}`, 'is not a metadata field (eventId, correlationId, causationId)');
    if (value === undefined) continue;
    if (typeof value !== 'string' || value.length === 0 || value.length > MAX_METADATA_ID_LENGTH || !value.isWellFormed()) {
      throw new ValidationError(`${field}.${key}`, `must be a well-formed string of 1 to ${MAX_METADATA_ID_LENGTH} characters`);
    }
  }
}

/** The metadata as stored: only the ids given, in a fixed order; `undefined` when none is. */
function storedMetadata(metadata: EventRecordMetadata | undefined): EventDocument['m'] {
  if (!metadata) return undefined;
  const m: NonNullable<EventDocument['m']> = {};
  for (const key of METADATA_FIELDS) if (typeof metadata[key] === 'string') m[key] = metadata[key];
  return Object.keys(m).length > 0 ? m : undefined;
}

/** An event type: absent, or a non-empty well-formed string of at most `MAX_EVENT_TYPE_BYTES` bytes. */
function checkEventType(field: string, type: unknown): void {
  if (type === undefined) return;
  if (typeof type !== 'string' || type.length === 0 || !type.isWellFormed()) {
    throw new ValidationError(field, 'must be a non-empty, well-formed string when given');
  }
  if (Buffer.byteLength(type, 'utf8') > MAX_EVENT_TYPE_BYTES) {
    throw new ValidationError(field, `must be at most ${MAX_EVENT_TYPE_BYTES} bytes of UTF-8`);
  }
}

/**
 * Builds the document of one record. The expiry is the record's own `ttl` when set, else `now +
 * storeTtlSeconds` when the store has one, else none; `ttl` carries the seconds left (at least 1) so Cosmos
 * DB purges it, `t` the absolute time so every reader can filter.
 */
export function toEventDocument(
  aggregateId: string,
  record: EventRecord,
  now: number,
  storeTtlSeconds: number,
): EventDocument {
  const doc: EventDocument = { id: String(record.version), a: aggregateId, v: record.version };
  if (record.data.length > 0) doc.d = Buffer.from(record.data.buffer, record.data.byteOffset, record.data.byteLength).toString('base64');
  const expiry = record.ttl && record.ttl > 0 ? record.ttl : storeTtlSeconds > 0 ? now + storeTtlSeconds : 0;
  if (expiry > 0) {
    doc.t = expiry;
    doc.ttl = Math.max(1, expiry - now);
  }
  if (record.type !== undefined) doc.y = record.type;
  const m = storedMetadata(record.metadata);
  if (m) doc.m = m;
  return doc;
}

/** Whether a document of the events container is an event: only events carry a numeric `v` (not the tip). */
export function isEventDocument(doc: { v?: unknown }): boolean {
  return typeof doc.v === 'number';
}

export function fromEventDocument(doc: EventDocument): EventRecord {
  const bytes = doc.d ? Buffer.from(doc.d, 'base64') : Buffer.alloc(0);
  const record: EventRecord = { version: doc.v, data: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
  if (doc.t) record.ttl = doc.t;
  if (typeof doc.y === 'string') record.type = doc.y;
  if (doc.m !== null && typeof doc.m === 'object') {
    const m = storedMetadata(doc.m);
    if (m) record.metadata = m;
  }
  return record;
}

// `{"id":"` + `","a":` + `,"v":` + `}`, and `,"d":"` + `"`, `,"t":`, `,"ttl":`: the fixed text of the JSON.
const DOCUMENT_FRAME_BYTES = 19;
const DATA_FRAME_BYTES = 7;
const EXPIRY_FRAME_BYTES = 12;

/**
 * The document's size as JSON, counted rather than serialized: every field but the aggregate id is digits
 * or base64, which JSON writes as they are, and the aggregate id's JSON size is the same for the whole call.
 * (Serializing each document to weigh it cost as much as the rest of `save`'s own work together.)
 */
function documentBytes(doc: EventDocument, aggregateIdJsonBytes: number): number {
  const id = doc.id.length;
  let bytes = DOCUMENT_FRAME_BYTES + aggregateIdJsonBytes + 2 * id;
  if (doc.d !== undefined) bytes += DATA_FRAME_BYTES + doc.d.length;
  if (doc.t !== undefined && doc.ttl !== undefined) bytes += EXPIRY_FRAME_BYTES + String(doc.t).length + String(doc.ttl).length;
  // `,"y":` + the type as JSON (escapes included): rare enough to serialize.
  if (doc.y !== undefined) bytes += 5 + Buffer.byteLength(JSON.stringify(doc.y));
  // `,"m":` + the ids as JSON.
  if (doc.m !== undefined) bytes += 5 + Buffer.byteLength(JSON.stringify(doc.m));
  return bytes;
}

/** Documents for a validated call, refusing a record whose document would exceed the item limit. */
export function prepareEvents(
  aggregateId: string,
  records: readonly EventRecord[],
  now: number,
  storeTtlSeconds: number,
): PreparedEvent[] {
  const aggregateIdJsonBytes = Buffer.byteLength(JSON.stringify(aggregateId));
  return records.map((record, i) => {
    const doc = toEventDocument(aggregateId, record, now, storeTtlSeconds);
    // Only a record's own expiry can be too far ahead: the store's ttl is bounded when the store is built.
    if (doc.t !== undefined) ttlUntil(`records[${i}].ttl`, doc.t, now);
    const bytes = documentBytes(doc, aggregateIdJsonBytes);
    if (bytes > MAX_DOCUMENT_BYTES) {
      throw new ValidationError(
        `records[${i}].data`,
        `makes a ${bytes}-byte document; Cosmos DB items are limited to 2 MB (at most ${MAX_DOCUMENT_BYTES} bytes of fields)`,
      );
    }
    return { record, doc, operationBytes: bytes + CREATE_ENVELOPE_BYTES };
  });
}

/**
 * Splits operations into transactional batches of at most 100 operations whose JSON array stays within the
 * request limit. Order is kept, so versions land in the order given.
 */
export function chunkByLimits<T extends { operationBytes: number }>(items: readonly T[]): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 2; // "[" and "]"
  for (const item of items) {
    const added = item.operationBytes + (current.length > 0 ? 1 : 0);
    if (current.length > 0 && (current.length === MAX_BATCH_OPERATIONS || bytes + added > MAX_REQUEST_BYTES)) {
      chunks.push(current);
      current = [];
      bytes = 2;
    }
    bytes += item.operationBytes + (current.length > 0 ? 1 : 0);
    current.push(item);
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
