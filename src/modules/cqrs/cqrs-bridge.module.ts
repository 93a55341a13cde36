import { Inject, Module, type DynamicModule } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { JsonEventSerializer, type EventClass } from '../event-sourcing/index.js';
import { OnStoredEvent, Subscriber, SubscriptionsModule, type EventDeserializer, type SubscribedEvent, type SubscriberOptions } from '../subscriptions/index.js';
import { CQRS_BRIDGE_EVENTS, CqrsEventDispatcher } from './cqrs-bridge.js';

/** Options of `CqrsBridgeModule.forRoot`. */
export interface CqrsBridgeOptions {
  /**
   * The explicit mapping from stored events to the classes `@EventsHandler`s declare: each class's stored type
   * name (its `@Event` name, else its class name, as repositories store it) selects the events delivered,
   * revived as instances of that class. Events of other types are passed over.
   */
  events: readonly [EventClass, ...EventClass[]];
  /** The consumer group: its own leases and checkpoints. Default `cqrs`. */
  name?: string;
  /** Only streams whose id starts so (e.g. `Order/`). */
  aggregateIdPrefix?: string;
  /** Decodes the stored events. Default `JsonEventSerializer`, the repositories' default. */
  serializer?: EventDeserializer;
  /** The subscription's other settings: `startFrom` (default `beginning`), `retry`, `onFailure`, `concurrency`... */
  subscription?: Omit<SubscriberOptions, 'name' | 'serializer'>;
}

/**
 * A durable bridge to @nestjs/cqrs: every event committed through the repositories reaches the app's
 * `@EventsHandler`s (awaited, in order per aggregate) and `@Saga`s through a change feed subscription with
 * its own checkpoints, so at least once, across crashes between the write and the handling, with the
 * subscription's retries, parked aggregates and dead letters. Needs `SubscriptionsModule.forRoot()` (or
 * `inMemory()`) and, for sagas' commands, `CqrsModule.forRoot()`. The events do not go through the
 * in-process `EventBus`: do not also publish them there.
 *
 * @example
 * @Module({
 *   imports: [CqrsModule.forRoot(), SubscriptionsModule.forRoot(), CqrsBridgeModule.forRoot({ events: [OrderPlaced, OrderShipped] })],
 *   providers: [OrderPlacedHandler], // @EventsHandler(OrderPlaced)
 * })
 * export class AppModule {}
 */
@Module({})
export class CqrsBridgeModule {
  static forRoot(options: CqrsBridgeOptions): DynamicModule {
    const { events, name = 'cqrs', aggregateIdPrefix, serializer = new JsonEventSerializer(), subscription = {} } = options ?? {};
    if (!Array.isArray(events) || events.length === 0 || !events.every((e) => typeof e === 'function')) {
      throw new Error('CqrsBridgeModule.forRoot: give events, the event classes your @EventsHandlers take');
    }
    return {
      module: CqrsBridgeModule,
      imports: [
        SubscriptionsModule.forFeature([bridgeSubscriber(name, events, aggregateIdPrefix, serializer, subscription)], {
          imports: [DiscoveryModule],
          providers: [{ provide: CQRS_BRIDGE_EVENTS, useValue: [...events] }, CqrsEventDispatcher],
        }),
      ],
    };
  }
}

/** A `@Subscriber` class of its own per bridge, as the subscriptions register classes. */
function bridgeSubscriber(
  name: string,
  events: readonly [EventClass, ...EventClass[]],
  aggregateIdPrefix: string | undefined,
  serializer: EventDeserializer,
  subscription: Omit<SubscriberOptions, 'name' | 'serializer'>,
) {
  class CqrsBridgeSubscriber {
    constructor(@Inject(CqrsEventDispatcher) private readonly dispatcher: CqrsEventDispatcher) {}

    deliver(event: object, context: SubscribedEvent<never>): Promise<void> {
      return this.dispatcher.dispatch(event, context);
    }
  }
  Subscriber({ startFrom: 'beginning', ...subscription, name, serializer })(CqrsBridgeSubscriber);
  const descriptor = Object.getOwnPropertyDescriptor(CqrsBridgeSubscriber.prototype, 'deliver')!;
  OnStoredEvent({ events, ...(aggregateIdPrefix === undefined ? {} : { aggregateIdPrefix }) })(CqrsBridgeSubscriber.prototype, 'deliver', descriptor);
  return CqrsBridgeSubscriber;
}
