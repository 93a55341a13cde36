import { Inject, Injectable, type Type } from '@nestjs/common';
import { eventTypeOf, type EventClass } from '../event-sourcing/index.js';
import { LEASES_CONTAINER, SUBSCRIPTIONS } from './subscriptions.constants.js';
import { SubscriberDefinitionError } from './subscriptions.errors.js';
import type { EventFilter, SubscribedEvent, SubscriberOptions, TypedEventFilter } from './subscriptions.interfaces.js';

/** A handler method as `@OnStoredEvent` accepts it: takes a `SubscribedEvent` (of any event type), may be async. */
export type EventHandlerMethod = (event: SubscribedEvent<never>) => unknown;

/**
 * A handler of event classes (`@OnStoredEvent(OrderPlaced, ...)`): the typed event (an instance of its class, its
 * stored fields copied in, as `@On` handlers of aggregates get it), then the `SubscribedEvent` it came in.
 */
export type TypedEventHandlerMethod<E> = (event: E, context: SubscribedEvent<never>) => unknown;

/** What `@OnStoredEvent` returns: a method decorator that only takes a handler of the fitting shape. */
export type HandlerDecorator<H> = <T extends H>(target: object, method: string | symbol, descriptor: TypedPropertyDescriptor<T>) => void;

/** One `@OnStoredEvent` method of a subscriber class. */
export interface HandlerDefinition {
  method: string | symbol;
  filter: EventFilter;
  /** For a handler of event classes: its classes by stored type name (`filter.types` lists the same names). */
  eventClasses?: ReadonlyMap<string, EventClass>;
}

/** What `@Subscriber` and `@OnStoredEvent` recorded on a class. */
export interface SubscriberDefinition {
  options: SubscriberOptions;
  handlers: HandlerDefinition[];
}

// Kept here rather than as reflect-metadata: only these decorators write it and only this module reads it.
const subscriberOptions = new WeakMap<object, SubscriberOptions>();
const handlerDefinitions = new WeakMap<object, HandlerDefinition[]>();

/**
 * Declares a subscriber: a provider whose `@OnStoredEvent` methods receive the events of the events container's
 * change feed, as the consumer group `name`. Register it with `SubscriptionsModule.forFeature([...])`.
 *
 * @example
 * @Subscriber({ name: 'order-stats', startFrom: 'beginning', serializer: new JsonEventSerializer() })
 * export class OrderStats {
 *   @OnStoredEvent({ events: [OrderPlaced], aggregateIdPrefix: 'Order/' })
 *   async placed(event: OrderPlaced, { aggregateId, version }: SubscribedEvent) { // aggregateId: '42' of 'Order/42'
 *     console.log(aggregateId, version, event.customerId);
 *   }
 * }
 */
export function Subscriber(options: SubscriberOptions): ClassDecorator {
  checkSubscriberOptions(options);
  return (target) => {
    Injectable()(target);
    subscriberOptions.set(target, { ...options });
  };
}

/**
 * Marks a method of a `@Subscriber` class as a handler. Several handlers may take the same event; they run
 * one after the other, in declaration order. Snapshot records reach none of them unless its filter says
 * `snapshots: true`.
 * - Event classes (`@OnStoredEvent(OrderPlaced, OrderShipped)`, or `{ events: [...] }` in a filter): events of
 *   those types; the handler receives the typed event first, the `SubscribedEvent` second (needs a serializer).
 * - No argument: every event. Type names: events whose decoded type is one of them (needs a serializer).
 * - A filter: by types and/or aggregate id prefix (decided before decoding: see `EventFilter`).
 *
 * @example
 * @OnStoredEvent(OrderPlaced) placed(event: OrderPlaced, context: SubscribedEvent) {}
 * @OnStoredEvent(OrderPlaced, OrderShipped) either(event: OrderPlaced | OrderShipped) {}
 * @OnStoredEvent({ events: [OrderPlaced], aggregateIdPrefix: 'Order/' }) orderPlaced(event: OrderPlaced) {}
 * @OnStoredEvent() all(e: SubscribedEvent) {}
 * @OnStoredEvent('OrderPlaced', 'OrderPaid') money(e: SubscribedEvent<EventEnvelope>) {}
 * @OnStoredEvent({ aggregateIdPrefix: 'Order/' }) orders(e: SubscribedEvent) {}
 */
export function OnStoredEvent<const C extends readonly [EventClass, ...EventClass[]]>(
  ...events: C
): HandlerDecorator<TypedEventHandlerMethod<InstanceType<C[number]>>>;
export function OnStoredEvent<const C extends readonly EventClass[]>(
  filter: TypedEventFilter<C[number]> & { events: C },
): HandlerDecorator<TypedEventHandlerMethod<InstanceType<C[number]>>>;
export function OnStoredEvent(...selection: string[] | [EventFilter]): HandlerDecorator<EventHandlerMethod>;
export function OnStoredEvent(...selection: unknown[]): HandlerDecorator<never> {
  const definition = toDefinition(selection);
  return (target, method, descriptor) => {
    if (typeof descriptor.value !== 'function') {
      throw new SubscriberDefinitionError(`@OnStoredEvent() goes on a method, not on ${String(method)}`);
    }
    const owner = target.constructor;
    handlerDefinitions.set(owner, [...(handlerDefinitions.get(owner) ?? []), { method, ...definition }]);
  };
}

/** The definition of a `@Subscriber` class, handlers of its base classes first. */
export function subscriberDefinitionOf(type: Type<unknown>): SubscriberDefinition {
  const options = subscriberOptions.get(type);
  if (!options) {
    throw new SubscriberDefinitionError(`${type.name} is not a subscriber: decorate it with @Subscriber({ name })`);
  }
  const handlers: HandlerDefinition[] = [];
  for (let cls: unknown = type; typeof cls === 'function' && cls !== Function.prototype; cls = Object.getPrototypeOf(cls)) {
    handlers.unshift(...(handlerDefinitions.get(cls) ?? []));
  }
  if (handlers.length === 0) {
    throw new SubscriberDefinitionError(`subscriber ${type.name} has no handler: mark at least one method with @OnStoredEvent()`);
  }
  return { options, handlers };
}

/** Injects the `Subscriptions` control (lag, rebuild, dead letters). */
export const InjectSubscriptions = (): ParameterDecorator & PropertyDecorator => Inject(SUBSCRIPTIONS);
/** Injects the leases `Container`. */
export const InjectLeasesContainer = (): ParameterDecorator & PropertyDecorator => Inject(LEASES_CONTAINER);

function toDefinition(selection: readonly unknown[]): Omit<HandlerDefinition, 'method'> {
  const usage = '@OnStoredEvent() takes event classes, event type names, or one filter object { events?, types?, aggregateIdPrefix?, snapshots? }';
  if (selection.length === 0) return { filter: {} };
  if (selection.every((s) => typeof s === 'function')) return typed(selection as EventClass[], {});
  if (selection.every((s) => typeof s === 'string')) {
    if (selection.some((s) => s === '')) throw new SubscriberDefinitionError('@OnStoredEvent(): an event type name is empty');
    return { filter: { types: [...(selection as string[])] } };
  }
  const [filter] = selection as [Partial<TypedEventFilter> & EventFilter];
  if (selection.length !== 1 || filter === null || typeof filter !== 'object' || Array.isArray(filter)) {
    throw new SubscriberDefinitionError(`${usage}, not a mix`);
  }
  const { events, types, aggregateIdPrefix, snapshots } = filter;
  if (aggregateIdPrefix !== undefined && typeof aggregateIdPrefix !== 'string') {
    throw new SubscriberDefinitionError('@OnStoredEvent(): aggregateIdPrefix must be a string');
  }
  if (snapshots !== undefined && typeof snapshots !== 'boolean') throw new SubscriberDefinitionError('@OnStoredEvent(): snapshots must be a boolean');
  const rest: EventFilter = {};
  if (aggregateIdPrefix !== undefined) rest.aggregateIdPrefix = aggregateIdPrefix;
  if (snapshots !== undefined) rest.snapshots = snapshots;
  if (events !== undefined) {
    if (types !== undefined) throw new SubscriberDefinitionError('@OnStoredEvent(): give events (classes) or types (names), not both');
    if (!Array.isArray(events) || events.length === 0 || !events.every((e) => typeof e === 'function')) {
      throw new SubscriberDefinitionError('@OnStoredEvent(): events must be a non-empty array of event classes');
    }
    return typed(events, rest);
  }
  if (types !== undefined) {
    if (!Array.isArray(types) || !types.every((t) => typeof t === 'string' && t !== '')) {
      throw new SubscriberDefinitionError('@OnStoredEvent(): types must be an array of non-empty event type names');
    }
    rest.types = [...types];
  }
  return { filter: rest };
}

function typed(classes: readonly EventClass[], rest: EventFilter): Omit<HandlerDefinition, 'method'> {
  const eventClasses = new Map<string, EventClass>();
  for (const eventClass of classes) {
    const type = eventTypeOf(eventClass);
    const known = eventClasses.get(type);
    if (known && known !== eventClass) {
      throw new SubscriberDefinitionError(`@OnStoredEvent(): ${known.name} and ${eventClass.name} are both stored as event type ${JSON.stringify(type)}`);
    }
    eventClasses.set(type, eventClass);
  }
  return { filter: { ...rest, types: [...eventClasses.keys()] }, eventClasses };
}

function checkSubscriberOptions(options: SubscriberOptions): void {
  const fail = (what: string) => new SubscriberDefinitionError(`@Subscriber(): ${what}`);
  if (!options || typeof options !== 'object') throw fail('give the options, at least { name }');
  const { name, startFrom, maxItemCount, concurrency, onFailure } = options;
  if (typeof name !== 'string' || name === '' || name.length > 200 || !name.isWellFormed()) {
    throw fail(`name must be a non-empty string of at most 200 characters, got ${JSON.stringify(name)}`);
  }
  if (startFrom !== undefined && startFrom !== 'beginning' && startFrom !== 'now' && !(startFrom instanceof Date && !Number.isNaN(startFrom.getTime()))) {
    throw fail(`startFrom of ${name} must be 'beginning', 'now' or a valid Date`);
  }
  for (const [field, value] of [['maxItemCount', maxItemCount], ['concurrency', concurrency]] as const) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) throw fail(`${field} of ${name} must be a positive integer`);
  }
  if (onFailure !== undefined && onFailure !== 'dead-letter' && onFailure !== 'stop') {
    throw fail(`onFailure of ${name} must be 'dead-letter' or 'stop'`);
  }
}
