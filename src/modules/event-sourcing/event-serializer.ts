import { compressAtOrAbove, decompressIfGzipped, EventStoreError, ValidationError } from '../event-store/index.js';
import { upcastEnvelope } from './event-types.js';

/**
 * What is stored for one event (the JSON inside an `EventRecord`'s data). The metadata fields and
 * `schemaVersion` were added later: events stored before them decode without them (schema version 1).
 */
export interface EventEnvelope {
  /** The event's type name (`@On` registers it; see `eventTypeOf`). */
  type: string;
  /** The aggregate's id as the application knows it (without the per-type namespace). */
  aggregateId: string;
  version: number;
  /** When the command ran, in microseconds since the Unix epoch. */
  at: number;
  /** Who issued the command. */
  actor: string;
  /** The event's own fields. */
  payload: unknown;
  /** The event's own id, a UUID. */
  eventId?: string;
  /** The id shared by every event of one story: an HTTP request's, and all its commands cause downstream. */
  correlationId?: string;
  /** The id of what caused the event: the handled event's `eventId`, or the correlation id for a story's first command. */
  causationId?: string;
  /** Free-form string headers (`runWithEventContext({ headers })`). */
  headers?: Record<string, string>;
  /** The payload's schema version (`@DomainEvent({ version })`; for snapshots, `@Aggregate({ schemaVersion })`); absent: 1. */
  schemaVersion?: number;
}

/** Turns envelopes into stored bytes and back. Plug your own into `EventSourcingModule.forRoot`. */
export interface EventSerializer {
  serialize(envelope: EventEnvelope): Uint8Array;
  deserialize(data: Uint8Array): EventEnvelope;
}

/** Events of at least this many bytes are gzip-compressed by `JsonEventSerializer`. */
export const DEFAULT_EVENT_COMPRESS_THRESHOLD = 1024;

/**
 * UTF-8 JSON, gzip-compressed at or above `compressThreshold` bytes. Reading looks at the gzip magic bytes,
 * not at the threshold, so records written with any threshold (or by protosource) read back. Reading also
 * upcasts (`upcastEnvelope`): an event of an older schema version, or stored under an alias, decodes as its
 * class's current version; `deserializeStored` gives the envelope exactly as stored.
 */
export class JsonEventSerializer implements EventSerializer {
  constructor(private readonly compressThreshold = DEFAULT_EVENT_COMPRESS_THRESHOLD) {
    if (!Number.isSafeInteger(compressThreshold) || compressThreshold < 0) {
      throw new ValidationError('compressThreshold', 'must be a non-negative integer number of bytes');
    }
  }

  serialize(envelope: EventEnvelope): Uint8Array {
    return compressAtOrAbove(Buffer.from(JSON.stringify(envelope), 'utf8'), this.compressThreshold);
  }

  deserialize(data: Uint8Array): EventEnvelope {
    return upcastEnvelope(this.deserializeStored(data));
  }

  /** The envelope exactly as stored: no upcasting. */
  deserializeStored(data: Uint8Array): EventEnvelope {
    let parsed: unknown;
    try {
      parsed = JSON.parse(decompressIfGzipped(data).toString('utf8'));
    } catch (err) {
      throw new EventStoreError('a stored event is not (gzipped) JSON', { cause: err });
    }
    // Stored data, not caller input: a server-side problem, not a ValidationError.
    if (!isEnvelope(parsed)) throw new EventStoreError('a stored event is not an envelope { type, aggregateId, version, at, actor, payload }');
    return parsed;
  }
}

function isEnvelope(value: unknown): value is EventEnvelope {
  if (value === null || typeof value !== 'object') return false;
  const e = value as Record<string, unknown>;
  return (
    typeof e.type === 'string' &&
    typeof e.aggregateId === 'string' &&
    Number.isSafeInteger(e.version) &&
    typeof e.at === 'number' &&
    typeof e.actor === 'string' &&
    optional(e.eventId, 'string') &&
    optional(e.correlationId, 'string') &&
    optional(e.causationId, 'string') &&
    (e.headers === undefined || isStringRecord(e.headers)) &&
    (e.schemaVersion === undefined || (Number.isSafeInteger(e.schemaVersion) && (e.schemaVersion as number) >= 1))
  );
}

function optional(value: unknown, type: 'string'): boolean {
  return value === undefined || typeof value === type;
}

function isStringRecord(value: unknown): boolean {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');
}

let lastMicros = 0;

/**
 * Microseconds since the Unix epoch, strictly increasing within the process: the wall clock's milliseconds
 * (so times agree with `Date.now()`), plus one microsecond per earlier call in the same millisecond.
 */
export function nowMicros(): number {
  const wall = Date.now() * 1000;
  lastMicros = wall > lastMicros ? wall : lastMicros + 1;
  return lastMicros;
}
