import { Module, type DynamicModule, type InjectionToken, type ModuleMetadata, type Provider, type Type } from '@nestjs/common';
import type { Container } from '@azure/cosmos';
import { DiscoveryModule, DiscoveryService } from '@nestjs/core';
import { SubscriberScopeCheck } from './subscriber-scope.js';
import { ensureContainer, EVENTS_CONTAINER } from '../cosmos/index.js';
import { STORE } from '../event-store/index.js';
import { InMemorySubscriptions, isCommitFeed, type InMemorySubscriptionsOptions } from './in-memory-subscriptions.js';
import { requireEventsContainer, SubscriptionsManager, type SubscriberRegistry } from './subscriptions-manager.js';
import { SubscriptionsHealthIndicator } from './subscriptions.health.js';
import { LEASES_CONTAINER, LEASES_PARTITION_KEY_PATH, SUBSCRIBER_REGISTRY, SUBSCRIPTIONS } from './subscriptions.constants.js';
import { subscriberDefinitionOf } from './subscriptions.decorators.js';
import type { EventDeserializer, SubscriptionsModuleOptions } from './subscriptions.interfaces.js';
import {
  ASYNC_OPTIONS_TYPE,
  ConfigurableModuleClass,
  OPTIONS_TYPE,
  SUBSCRIPTIONS_MODULE_OPTIONS,
} from './subscriptions.module-definition.js';
import { resolveSubscriptionsOptions } from './subscriptions-options.js';

async function openLeases(container: Container | undefined, options: SubscriptionsModuleOptions): Promise<Container> {
  const events = requireEventsContainer(container);
  const { leasesContainerId, ensure } = resolveSubscriptionsOptions(options);
  // Next to the events container, in the same database.
  const database = events.database;
  if (ensure) await ensureContainer(database, leasesContainerId, LEASES_PARTITION_KEY_PATH, 'the subscriptions module');
  return database.container(leasesContainerId);
}

/**
 * Subscriptions to the events container's change feed: leases and checkpoints in a leases container (created
 * by `ensure`, partition key `/group`), one reader per feed range and consumer group, shared between the
 * instances of the service. Needs `CosmosModule` (for `EVENTS_CONTAINER`). Global unless `isGlobal: false`.
 *
 * @example
 * @Module({
 *   imports: [
 *     CosmosModule.forRoot({ ... }),
 *     SubscriptionsModule.forRoot({ leaseDurationMs: 30_000 }),
 *     SubscriptionsModule.forFeature([OrderStats]),
 *   ],
 * })
 * export class AppModule {}
 */
@Module({
  providers: [
    {
      provide: LEASES_CONTAINER,
      useFactory: openLeases,
      inject: [{ token: EVENTS_CONTAINER, optional: true }, SUBSCRIPTIONS_MODULE_OPTIONS],
    },
    SubscriptionsManager,
    { provide: SUBSCRIPTIONS, useExisting: SubscriptionsManager },
    { provide: SUBSCRIBER_REGISTRY, useExisting: SubscriptionsManager },
    SubscriptionsHealthIndicator,
  ],
  exports: [SUBSCRIPTIONS, SUBSCRIBER_REGISTRY, LEASES_CONTAINER, SubscriptionsManager, SubscriptionsHealthIndicator],
})
export class SubscriptionsModule extends ConfigurableModuleClass {
  static override forRoot(options: typeof OPTIONS_TYPE = {}): DynamicModule {
    resolveSubscriptionsOptions(options); // fail at import time, naming the option
    return super.forRoot(options);
  }

  static override forRootAsync(options: typeof ASYNC_OPTIONS_TYPE): DynamicModule {
    if (!options?.useFactory && !options?.useClass && !options?.useExisting) {
      throw new Error(
        'SubscriptionsModule.forRootAsync: give one of useFactory (with inject), useClass or useExisting ' +
          '(a provider implementing createSubscriptionsOptions())',
      );
    }
    return super.forRootAsync(options);
  }

  /**
   * The subscriptions over the commits of `EventStoreModule.inMemory()`'s store, without Cosmos DB: for unit
   * tests of subscribers. The same `@Subscriber` classes (registered with `forFeature`, as in the app), the
   * same delivery (at least once, each aggregate's events in order, retries, dead letters, `stop`), the same
   * `Subscriptions` API (`waitForCatchUp`, `lag`, `rebuild`, dead letters), all in memory: one reader per
   * subscriber, reading every commit of the store in commit order. Subscribers start with the application
   * (`init()`), unless `autoStart: false`. Global unless `isGlobal: false`.
   *
   * @example
   * const moduleRef = await Test.createTestingModule({
   *   imports: [
   *     EventStoreModule.inMemory(),
   *     SubscriptionsModule.inMemory({ retry: { attempts: 1 } }),
   *     SubscriptionsModule.forFeature([OrderStatsProjection], { providers: [OrderStatsStore] }),
   *   ],
   * }).compile();
   * await moduleRef.init();
   * // ...commit events (a repository, or the STORE), then:
   * await moduleRef.get<Subscriptions>(SUBSCRIPTIONS).waitForCatchUp('order-stats');
   */
  static inMemory(options: InMemorySubscriptionsOptions & { isGlobal?: boolean } = {}): DynamicModule {
    const { isGlobal = true, ...subscriptionOptions } = options;
    const settings = resolveSubscriptionsOptions(subscriptionOptions); // fail at import time, naming the option
    return {
      module: InMemorySubscriptionsModule,
      global: isGlobal,
      providers: [
        {
          provide: InMemorySubscriptions,
          useFactory: (store: unknown) => {
            if (!isCommitFeed(store)) {
              throw new Error(
                'SubscriptionsModule.inMemory() delivers the events of the in-memory event store: import EventStoreModule.inMemory() ' +
                  `(STORE is ${store === undefined ? 'not provided' : `a ${(store as object).constructor?.name ?? typeof store}`})`,
              );
            }
            return new InMemorySubscriptions(store, settings);
          },
          inject: [{ token: STORE, optional: true }],
        },
        { provide: SUBSCRIPTIONS, useExisting: InMemorySubscriptions },
        { provide: SUBSCRIBER_REGISTRY, useExisting: InMemorySubscriptions },
        SubscriptionsHealthIndicator,
      ],
      exports: [SUBSCRIPTIONS, SUBSCRIBER_REGISTRY, InMemorySubscriptions, SubscriptionsHealthIndicator],
    };
  }

  /**
   * Provides and registers `@Subscriber` classes. They are instantiated in the module this returns, which sees
   * global providers, `providers` (exported too, so the importer can inject them) and what `imports` export.
   * A serializer given as an injection token is resolved there as well. A subscriber must be a singleton: one
   * that is, or depends on, a request-scoped or transient provider fails the start naming it and the dependency.
   *
   * @example
   * @Module({
   *   imports: [SubscriptionsModule.forFeature([OrderStatsProjection], { providers: [OrderStatsStore] })],
   *   controllers: [OrderStatsController], // injects OrderStatsStore
   * })
   * export class OrderStatsModule {}
   */
  static forFeature(subscribers: Array<Type<unknown>>, dependencies: SubscriberDependencies = {}): DynamicModule {
    const registrations: Provider[] = subscribers.map((type, i) => {
      const { options } = subscriberDefinitionOf(type);
      const serializer = options.serializer;
      const serializerToken = serializer !== undefined && !isDeserializer(serializer) ? (serializer as InjectionToken) : undefined;
      return {
        provide: Symbol(`SUBSCRIBER_REGISTRATION_${i}_${type.name}`),
        useFactory: (registry: SubscriberRegistry | undefined, instance: object, resolved?: EventDeserializer) => {
          if (!registry) {
            throw new Error(
              `SubscriptionsModule.forFeature([${type.name}]) needs the subscriptions: import SubscriptionsModule.forRoot() ` +
                '(or SubscriptionsModule.inMemory() in a unit test) in the application module',
            );
          }
          registry.register(instance, serializerToken === undefined ? (serializer as EventDeserializer | undefined) : resolved);
        },
        inject:
          serializerToken === undefined
            ? [{ token: SUBSCRIBER_REGISTRY, optional: true }, type]
            : [{ token: SUBSCRIBER_REGISTRY, optional: true }, type, serializerToken],
      };
    });
    const providers = dependencies.providers ?? [];
    // A subscriber that cannot be a singleton would never be created (its registration with it): fail the start.
    const scopeCheck: Provider = {
      provide: Symbol('SUBSCRIBER_SCOPE_CHECK'),
      useFactory: (discovery: DiscoveryService) => new SubscriberScopeCheck(discovery, subscribers),
      inject: [DiscoveryService],
    };
    return {
      module: SubscriptionsFeatureModule,
      imports: [DiscoveryModule, ...(dependencies.imports ?? [])],
      providers: [...providers, ...subscribers, ...registrations, scopeCheck],
      exports: [...providers.map((p) => (typeof p === 'function' ? p : p.provide)), ...subscribers],
    };
  }
}

/** What the subscribers of `SubscriptionsModule.forFeature` need besides global providers. */
export interface SubscriberDependencies {
  imports?: ModuleMetadata['imports'];
  providers?: Provider[];
}

/** The module `SubscriptionsModule.inMemory` returns: no Cosmos DB dependency. */
@Module({})
export class InMemorySubscriptionsModule {}

/** The module `SubscriptionsModule.forFeature` returns. */
@Module({})
export class SubscriptionsFeatureModule {}

function isDeserializer(value: unknown): value is EventDeserializer {
  return value !== null && typeof value === 'object' && typeof (value as EventDeserializer).deserialize === 'function';
}
