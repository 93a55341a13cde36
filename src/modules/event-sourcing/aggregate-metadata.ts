import type { AggregateKeys, GsiSlots } from '../event-store/index.js';
import type { EventContext } from './repository.js';
import type { EventEnvelope } from './event-serializer.js';
import { EventStoreError } from '../event-store/index.js';
import { eventTypeInfo } from './event-types.js';

/**
 * A class whose instances are events. Its stored type name is, first found: `@DomainEvent('Name')`, its own
 * `static type`, its class name. Keep it stable: stored events name their class by it.
 */
export type EventClass<E extends object = object> = (abstract new (...args: never[]) => E) & { readonly type?: string };

/** The stored type name of an event class or instance (`@DomainEvent`, else `static type`, else the class name). */
export function eventTypeOf(event: EventClass | object): string {
  const ctor = (typeof event === 'function' ? event : event.constructor) as EventClass;
  // Only the class's own name: a subclass of an event class is another event type.
  const declared = eventTypeInfo(ctor);
  if (declared) return declared.type;
  return Object.hasOwn(ctor, 'type') && typeof ctor.type === 'string' ? ctor.type : ctor.name;
}

/** Options of `@Aggregate`. */
export interface AggregateOptions {
  /**
   * The aggregate's type name: the namespace of its streams in the events container (`<type>/<id>`) and
   * the default sort key of its materialized document. Default: the class name (never inherited from a
   * base class, unlike the other options). Keep it stable.
   */
  type?: string;
  /** Every this-many versions a snapshot of the full state is stored; loads then read only this many records. */
  snapshotEvery?: number;
  /** Events expire this many seconds after they are written; absent: never. */
  eventTtlSeconds?: number;
  /** The materialized document expires this many seconds after its last write; absent: never. */
  ttlSeconds?: number;
  /**
   * The version of the state's shape (what snapshots store), a positive integer; default 1. Raise it when
   * the state's fields change: snapshots record it, and one of another version is passed over (the state is
   * replayed from the events, or from an older snapshot that fits), never restored into the wrong shape.
   */
  schemaVersion?: number;
}

type KeyField = { property: string | symbol };

interface AggregateMetadata {
  options: AggregateOptions;
  handlers: Map<string, { eventClass: EventClass; method: string | symbol }>;
  partitionKey?: KeyField;
  sortKey?: KeyField;
  gsi: Map<number, { pk?: KeyField; sk?: KeyField }>;
}

const metadata = new WeakMap<object, AggregateMetadata>();
// Merged metadata by class: keys() and ttlSeconds read it on every materialization.
let merged = new WeakMap<object, AggregateMetadata>();

function own(target: object): AggregateMetadata {
  merged = new WeakMap(); // a decorator ran: merge again
  let meta = metadata.get(target);
  if (!meta) {
    meta = { options: {}, handlers: new Map(), gsi: new Map() };
    metadata.set(target, meta);
  }
  return meta;
}

/** An aggregate class's metadata, its base classes' merged in (the subclass wins). */
export function aggregateMetadata(ctor: abstract new (...args: never[]) => object): Readonly<AggregateMetadata> {
  const cached = merged.get(ctor);
  if (cached) return cached;
  const chain: AggregateMetadata[] = [];
  for (let c: unknown = ctor; typeof c === 'function' && c !== Function.prototype; c = Object.getPrototypeOf(c)) {
    const meta = metadata.get(c);
    if (meta) chain.unshift(meta);
  }
  const result: AggregateMetadata = { options: {}, handlers: new Map(), gsi: new Map() };
  for (const meta of chain) {
    Object.assign(result.options, meta.options);
    for (const [type, handler] of meta.handlers) result.handlers.set(type, handler);
    result.partitionKey = meta.partitionKey ?? result.partitionKey;
    result.sortKey = meta.sortKey ?? result.sortKey;
    for (const [slot, keys] of meta.gsi) result.gsi.set(slot, { ...result.gsi.get(slot), ...keys });
  }
  merged.set(ctor, result);
  return result;
}

/** The aggregate type name (`@Aggregate({ type })`, else the class name). */
export function aggregateTypeOf(ctor: abstract new (...args: never[]) => object): string {
  // Not inherited: a subclass is another aggregate type, with streams of its own.
  return metadata.get(ctor)?.options.type ?? ctor.name;
}

/** The aggregate's state schema version (`@Aggregate({ schemaVersion })`, default 1), which its snapshots carry. */
export function aggregateSchemaVersion(ctor: abstract new (...args: never[]) => object): number {
  return aggregateMetadata(ctor).options.schemaVersion ?? 1;
}

/**
 * Whether a snapshot record may be restored into the aggregate class: it was taken at the class's state
 * schema version (a snapshot without one was taken at version 1). The repository passes any other over.
 */
export function snapshotFits(snapshot: Pick<EventEnvelope, 'schemaVersion'>, ctor: abstract new (...args: never[]) => object): boolean {
  return (snapshot.schemaVersion ?? 1) === aggregateSchemaVersion(ctor);
}

/**
 * Declares an event-sourced aggregate class: its type name, snapshot interval and TTLs.
 *
 * @example
 * @Aggregate({ type: 'Order', snapshotEvery: 100 })
 * export class Order extends AggregateRoot { ... }
 */
export function Aggregate(options: AggregateOptions = {}): ClassDecorator {
  if (options.snapshotEvery !== undefined && (!Number.isSafeInteger(options.snapshotEvery) || options.snapshotEvery < 2)) {
    throw new EventStoreError(`@Aggregate snapshotEvery must be an integer of at least 2, got ${String(options.snapshotEvery)}`);
  }
  if (options.schemaVersion !== undefined && (!Number.isSafeInteger(options.schemaVersion) || options.schemaVersion < 1)) {
    throw new EventStoreError(`@Aggregate schemaVersion must be a positive integer, got ${String(options.schemaVersion)}`);
  }
  for (const field of ['eventTtlSeconds', 'ttlSeconds'] as const) {
    const value = options[field];
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
      throw new EventStoreError(`@Aggregate ${field} must be a positive integer number of seconds, got ${String(value)}`);
    }
  }
  return (target) => {
    Object.assign(own(target).options, options);
  };
}

/**
 * Marks the method that applies one event type to the aggregate's state; it is called with the event and
 * an `EventContext` (version, time in µs, actor). Handlers only change state: they run on every load, so
 * they must not call out or throw for an event already stored.
 *
 * @example
 * @On(LineAdded)
 * onLineAdded(event: LineAdded) { this.lines.push({ ...event }); }
 */
export function On<E extends object>(
  eventClass: EventClass<E>,
): <H extends (event: E, context: EventContext) => void>(target: object, method: string | symbol, descriptor: TypedPropertyDescriptor<H>) => void {
  return (target, method) => {
    const handlers = own(target.constructor).handlers;
    const type = eventTypeOf(eventClass);
    if (handlers.has(type)) {
      throw new EventStoreError(`${target.constructor.name} has two @On handlers for event type ${JSON.stringify(type)}`);
    }
    handlers.set(type, { eventClass, method });
  };
}

/** The property (or getter) holding the materialized document's partition key. Default: the aggregate id. */
export function PartitionKey(): PropertyDecorator {
  return (target, property) => {
    own(target.constructor).partitionKey = { property };
  };
}

/** The property (or getter) holding the materialized document's sort key. Default: the aggregate type name. */
export function SortKey(): PropertyDecorator {
  return (target, property) => {
    own(target.constructor).sortKey = { property };
  };
}

/**
 * The property (or getter) holding one key of secondary-index slot `slot` (1-20) of the materialized document.
 *
 * @example
 * @Gsi(1, 'pk') customerId = '';
 * @Gsi(1, 'sk') createdAt = '';
 */
export function Gsi(slot: number, key: 'pk' | 'sk'): PropertyDecorator {
  if (!Number.isInteger(slot) || slot < 1 || slot > 20) {
    throw new EventStoreError(`@Gsi slot must be an integer from 1 to 20, got ${String(slot)}`);
  }
  if (key !== 'pk' && key !== 'sk') throw new EventStoreError(`@Gsi key must be 'pk' or 'sk', got ${String(key)}`);
  return (target, property) => {
    const gsi = own(target.constructor).gsi;
    gsi.set(slot, { ...gsi.get(slot), [key]: { property } });
  };
}

function keyValue(aggregate: object, field: KeyField | undefined): string | undefined {
  if (!field) return undefined;
  const value: unknown = (aggregate as Record<string | symbol, unknown>)[field.property];
  if (value === undefined || value === null) return '';
  return value instanceof Date ? value.toISOString() : String(value);
}

/** The materialized keys of an aggregate, read from its key decorators. */
export function keysFromDecorators(aggregate: object & { id: string }): AggregateKeys {
  const ctor = aggregate.constructor as abstract new (...args: never[]) => object;
  const meta = aggregateMetadata(ctor);
  const keys: AggregateKeys = {
    pk: keyValue(aggregate, meta.partitionKey) ?? aggregate.id,
    sk: keyValue(aggregate, meta.sortKey) ?? aggregateTypeOf(ctor),
  };
  if (meta.gsi.size > 0) {
    const gsi: GsiSlots = {};
    for (const [slot, { pk, sk }] of meta.gsi) gsi[slot] = { pk: keyValue(aggregate, pk) ?? '', sk: keyValue(aggregate, sk) ?? '' };
    keys.gsi = gsi;
  }
  return keys;
}
