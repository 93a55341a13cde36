import { randomUUID } from 'node:crypto';
import { EventStoreError } from '../event-store/index.js';
import { currentTraceparent } from '../telemetry/index.js';
import { currentEventContext } from './event-context.js';
import type { EventEnvelope } from './event-serializer.js';

/**
 * Turns an event's payload of schema version N into the payload of version N + 1. It gets the stored fields
 * (already brought to version N by the upcasters before it) and the envelope they came in; it returns the
 * new fields and must not throw for an event that was valid when written. It runs on every read: keep it pure.
 */
export type Upcaster = (payload: Record<string, unknown>, envelope: Readonly<EventEnvelope>) => Record<string, unknown>;

/** Options of `@DomainEvent`. */
export interface DomainEventOptions {
  /** The event class's current schema version, a positive integer. Default 1. */
  version?: number;
  /** Type names this event was stored under before (renamed classes); their events decode as this class. */
  aliases?: readonly string[];
  /** One upcaster per older schema version, keyed by the version it reads: `{ 1: v1ToV2, 2: v2ToV3 }`. */
  upcasters?: Readonly<Record<number, Upcaster>>;
}

/** What `@DomainEvent` registered for an event class. */
export interface EventTypeInfo {
  type: string;
  version: number;
  aliases: readonly string[];
  upcasters: ReadonlyMap<number, Upcaster>;
}

/**
 * A stored event of a schema version that has no upcaster path to its class's current version (or a newer
 * one, written by newer code): decoding it would give a wrong state, so it is refused. Retrying does not help;
 * add the missing upcaster. In a repository it is the cause of an `UnreadableStreamError`.
 */
export class EventSchemaError extends EventStoreError {
  constructor(
    /** The type name the event was stored under. */
    readonly eventType: string,
    /** The schema version it was stored with. */
    readonly storedVersion: number,
    /** The class's current schema version. */
    readonly currentVersion: number,
    readonly reason: string,
  ) {
    super(`event type ${JSON.stringify(eventType)} stored at schema version ${storedVersion} cannot be read as version ${currentVersion}: ${reason}`);
  }
}

const byClass = new WeakMap<object, EventTypeInfo>();
const byName = new Map<string, { info: EventTypeInfo; eventClass: object }>();

function checkVersion(what: string, value: unknown): number {
  if (!Number.isSafeInteger(value) || (value as number) < 1) {
    throw new EventStoreError(`${what} must be a positive integer, got ${String(value)}`);
  }
  return value as number;
}

/**
 * Declares an event class's stored type name (keep it stable: it is what the stored events say), its schema
 * version, the names it was stored under before, and the upcasters that bring older versions to the current
 * one. Events are stored with their schema version; on read (`load`, `history`, subscribers through
 * `JsonEventSerializer`) an older one goes through the upcasters, one version at a time, and an alias through
 * to this class; the stored bytes never change. Without the decorator an event's type is its `static type`
 * or its class name, at schema version 1.
 *
 * @example
 * @DomainEvent('LineAdded', { version: 2, upcasters: { 1: ({ unitPrice, ...rest }) => ({ ...rest, unitPriceCents: Math.round(Number(unitPrice) * 100) }) } })
 * export class LineAdded { constructor(readonly sku: string, readonly quantity: number, readonly unitPriceCents: number) {} }
 */
export function DomainEvent(type: string, options: DomainEventOptions = {}): ClassDecorator {
  if (typeof type !== 'string' || type.length === 0) throw new EventStoreError('@DomainEvent type must be a non-empty string');
  if (type.startsWith('$')) throw new EventStoreError(`@DomainEvent type ${JSON.stringify(type)}: names starting with $ are the library's own`);
  const version = checkVersion(`@DomainEvent(${JSON.stringify(type)}) version`, options.version ?? 1);
  const aliases = [...(options.aliases ?? [])];
  for (const alias of aliases) {
    if (typeof alias !== 'string' || alias.length === 0 || alias === type) {
      throw new EventStoreError(`@DomainEvent(${JSON.stringify(type)}) aliases must be non-empty names other than the type, got ${JSON.stringify(alias)}`);
    }
  }
  const upcasters = new Map<number, Upcaster>();
  for (const [key, upcaster] of Object.entries(options.upcasters ?? {})) {
    const from = Number(key);
    if (!Number.isSafeInteger(from) || from < 1 || from >= version) {
      throw new EventStoreError(`@DomainEvent(${JSON.stringify(type)}) has an upcaster from version ${key}; only versions 1 to ${version - 1} can be upcast`);
    }
    if (typeof upcaster !== 'function') throw new EventStoreError(`@DomainEvent(${JSON.stringify(type)}) upcaster from version ${key} is not a function`);
    upcasters.set(from, upcaster);
  }
  const info: EventTypeInfo = Object.freeze({ type, version, aliases: Object.freeze(aliases), upcasters });
  return (target) => {
    for (const name of [type, ...aliases]) {
      const taken = byName.get(name);
      if (taken && taken.eventClass !== target) {
        throw new EventStoreError(`event type name ${JSON.stringify(name)} is declared by two classes (${(taken.eventClass as { name?: string }).name} and ${target.name})`);
      }
    }
    byClass.set(target, info);
    for (const name of [type, ...aliases]) byName.set(name, { info, eventClass: target });
  };
}

/** What `@DomainEvent` declared for the class (its own, not a base class's); undefined without the decorator. */
export function eventTypeInfo(eventClass: object): EventTypeInfo | undefined {
  return byClass.get(eventClass);
}

/** The current schema version of events stored under `type` (or one of its aliases): 1 when undeclared. */
export function eventSchemaVersion(type: string): number {
  return byName.get(type)?.info.version ?? 1;
}

/**
 * The envelope as its event class reads it today: an alias's type name replaced by the class's, and a payload
 * of an older schema version taken through the upcasters to the current one. Undeclared types and snapshots
 * are returned as they are. `EventSchemaError` when a version has no path (a missing upcaster, or a version
 * newer than the class). `JsonEventSerializer.deserialize` calls it; a custom `EventSerializer` should too.
 */
export function upcastEnvelope(envelope: EventEnvelope): EventEnvelope {
  const entry = byName.get(envelope.type);
  if (!entry) return envelope;
  const { info } = entry;
  const stored = envelope.schemaVersion ?? 1;
  if (stored === info.version && envelope.type === info.type) return envelope;
  if (stored > info.version) {
    throw new EventSchemaError(envelope.type, stored, info.version, 'it is newer than the class (written by newer code?)');
  }
  let payload = (envelope.payload ?? {}) as Record<string, unknown>;
  for (let from = stored; from < info.version; from++) {
    const upcaster = info.upcasters.get(from);
    if (!upcaster) {
      throw new EventSchemaError(envelope.type, stored, info.version, `no upcaster from version ${from} to ${from + 1} (@DomainEvent upcasters)`);
    }
    payload = upcaster(payload, envelope);
    if (payload === null || typeof payload !== 'object') {
      throw new EventSchemaError(envelope.type, stored, info.version, `the upcaster from version ${from} returned no object`);
    }
  }
  return { ...envelope, type: info.type, schemaVersion: info.version, payload };
}

/** The fields `stampEvent` adds to an envelope the repository builds. */
export type EventStamp = Pick<EventEnvelope, 'eventId' | 'correlationId' | 'causationId' | 'headers' | 'schemaVersion'>;

/**
 * Stamps the events of one command: each gets a fresh `eventId` and its type's schema version; all share the
 * correlation and causation ids of the current event context (`runWithEventContext`, the HTTP interceptor,
 * `runInHandlerContext`), or, outside any, a fresh correlation id that is also the causation id.
 * `snapshotSchemaVersion` is what snapshot records (`$snapshot`) carry: the aggregate's schema version.
 * Under an active OpenTelemetry span the headers also hold its W3C `traceparent`.
 */
export function commandStamper(snapshotSchemaVersion: number): (type: string, snapshotType: string) => EventStamp {
  const context = currentEventContext();
  const correlationId = context?.correlationId ?? randomUUID();
  const causationId = context?.causationId ?? correlationId;
  // Under an OpenTelemetry span (an SDK registered), the events remember it: a subscriber's page links to it.
  const traceparent = currentTraceparent();
  const headers = traceparent && context?.headers?.traceparent === undefined ? { ...context?.headers, traceparent } : context?.headers;
  return (type, snapshotType) => {
    const stamp: EventStamp = {
      eventId: randomUUID(),
      correlationId,
      causationId,
      schemaVersion: type === snapshotType ? snapshotSchemaVersion : eventSchemaVersion(type),
    };
    if (headers && Object.keys(headers).length > 0) stamp.headers = { ...headers };
    return stamp;
  };
}
