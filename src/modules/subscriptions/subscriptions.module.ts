import { Module, type DynamicModule, type InjectionToken, type ModuleMetadata, type Provider, type Type } from '@nestjs/common';
import type { Container } from '@azure/cosmos';
import { ensureContainer, EVENTS_CONTAINER } from '../cosmos/index.js';
import { SubscriptionsManager } from './subscriptions-manager.js';
import { SubscriptionsHealthIndicator } from './subscriptions.health.js';
import { LEASES_CONTAINER, LEASES_PARTITION_KEY_PATH, SUBSCRIPTIONS } from './subscriptions.constants.js';
import { subscriberDefinitionOf } from './subscriptions.decorators.js';
import type { EventDeserializer, SubscriptionsModuleOptions } from './subscriptions.interfaces.js';
import {
  ASYNC_OPTIONS_TYPE,
  ConfigurableModuleClass,
  OPTIONS_TYPE,
  SUBSCRIPTIONS_MODULE_OPTIONS,
} from './subscriptions.module-definition.js';
import { resolveSubscriptionsOptions } from './subscriptions-options.js';

async function openLeases(events: Container, options: SubscriptionsModuleOptions): Promise<Container> {
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
    { provide: LEASES_CONTAINER, useFactory: openLeases, inject: [EVENTS_CONTAINER, SUBSCRIPTIONS_MODULE_OPTIONS] },
    SubscriptionsManager,
    { provide: SUBSCRIPTIONS, useExisting: SubscriptionsManager },
    SubscriptionsHealthIndicator,
  ],
  exports: [SUBSCRIPTIONS, LEASES_CONTAINER, SubscriptionsManager, SubscriptionsHealthIndicator],
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
   * Provides and registers `@Subscriber` classes. They are instantiated in the module this returns, which sees
   * global providers, `providers` (exported too, so the importer can inject them) and what `imports` export.
   * A serializer given as an injection token is resolved there as well.
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
        useFactory: (manager: SubscriptionsManager, instance: object, resolved?: EventDeserializer) =>
          manager.register(instance, serializerToken === undefined ? (serializer as EventDeserializer | undefined) : resolved),
        inject: serializerToken === undefined ? [SubscriptionsManager, type] : [SubscriptionsManager, type, serializerToken],
      };
    });
    const providers = dependencies.providers ?? [];
    return {
      module: SubscriptionsFeatureModule,
      imports: dependencies.imports ?? [],
      providers: [...providers, ...subscribers, ...registrations],
      exports: [...providers.map((p) => (typeof p === 'function' ? p : p.provide)), ...subscribers],
    };
  }
}

/** What the subscribers of `SubscriptionsModule.forFeature` need besides global providers. */
export interface SubscriberDependencies {
  imports?: ModuleMetadata['imports'];
  providers?: Provider[];
}

/** The module `SubscriptionsModule.forFeature` returns. */
@Module({})
export class SubscriptionsFeatureModule {}

function isDeserializer(value: unknown): value is EventDeserializer {
  return value !== null && typeof value === 'object' && typeof (value as EventDeserializer).deserialize === 'function';
}
