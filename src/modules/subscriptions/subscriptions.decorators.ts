import { Inject, Injectable, type Type } from '@nestjs/common';
import { LEASES_CONTAINER, SUBSCRIPTIONS } from './subscriptions.constants.js';
import { SubscriberDefinitionError } from './subscriptions.errors.js';
import type { EventFilter, SubscribedEvent, SubscriberOptions } from './subscriptions.interfaces.js';

/** A handler method as `@OnEvent` accepts it: takes a `SubscribedEvent` (of any event type), may be async. */
export type EventHandlerMethod = (event: SubscribedEvent<never>) => unknown;

/** One `@OnEvent` method of a subscriber class. */
export interface HandlerDefinition {
  method: string | symbol;
  filter: EventFilter;
}

/** What `@Subscriber` and `@OnEvent` recorded on a class. */
export interface SubscriberDefinition {
  options: SubscriberOptions;
  handlers: HandlerDefinition[];
}

// Kept here rather than as reflect-metadata: only these decorators write it and only this module reads it.
const subscriberOptions = new WeakMap<object, SubscriberOptions>();
const handlerDefinitions = new WeakMap<object, HandlerDefinition[]>();

/**
 * Declares a subscriber: a provider whose `@OnEvent` methods receive the events of the events container's
 * change feed, as the consumer group `name`. Register it with `SubscriptionsModule.forFeature([...])`.
 *
 * @example
 * @Subscriber({ name: 'order-stats', startFrom: 'beginning', serializer: new JsonSerializer() })
 * export class OrderStats {
 *   @OnEvent('OrderPlaced')
 *   async placed({ aggregateId, version, event }: SubscribedEvent<OrderPlaced>) { ... }
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
 * Marks a method of a `@Subscriber` class as a handler. No argument: every event. Type names: events whose
 * decoded `type` is one of them (needs a serializer). A filter: by types and/or aggregate id prefix. Several
 * handlers may take the same event; they run one after the other, in declaration order.
 *
 * @example
 * @OnEvent() all(e: SubscribedEvent) {}
 * @OnEvent('OrderPlaced', 'OrderPaid') money(e: SubscribedEvent<OrderEvent>) {}
 * @OnEvent({ aggregateIdPrefix: 'Order/' }) orders(e: SubscribedEvent) {}
 */
export function OnEvent(
  ...selection: string[] | [EventFilter]
): <T extends EventHandlerMethod>(target: object, method: string | symbol, descriptor: TypedPropertyDescriptor<T>) => void {
  const filter = toFilter(selection);
  return (target, method, descriptor) => {
    if (typeof descriptor.value !== 'function') {
      throw new SubscriberDefinitionError(`@OnEvent() goes on a method, not on ${String(method)}`);
    }
    const owner = target.constructor;
    handlerDefinitions.set(owner, [...(handlerDefinitions.get(owner) ?? []), { method, filter }]);
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
    throw new SubscriberDefinitionError(`subscriber ${type.name} has no handler: mark at least one method with @OnEvent()`);
  }
  return { options, handlers };
}

/** Injects the `Subscriptions` control (lag, rebuild, dead letters). */
export const InjectSubscriptions = (): ParameterDecorator & PropertyDecorator => Inject(SUBSCRIPTIONS);
/** Injects the leases `Container`. */
export const InjectLeasesContainer = (): ParameterDecorator & PropertyDecorator => Inject(LEASES_CONTAINER);

function toFilter(selection: string[] | [EventFilter]): EventFilter {
  if (selection.length === 0) return {};
  if (selection.every((s) => typeof s === 'string')) {
    if (selection.some((s) => s === '')) throw new SubscriberDefinitionError('@OnEvent(): an event type name is empty');
    return { types: [...selection] };
  }
  const [filter] = selection;
  if (selection.length !== 1 || filter === null || typeof filter !== 'object') {
    throw new SubscriberDefinitionError('@OnEvent() takes event type names, or one filter object { types?, aggregateIdPrefix? }');
  }
  return { ...filter, types: filter.types ? [...filter.types] : undefined };
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
