import { ConfigurableModuleBuilder, Module, type DynamicModule, type Provider } from '@nestjs/common';
import {
  AGGREGATE_STORE,
  OPAQUE_STORE,
  SNAPSHOT_TAIL_STORE,
  type AggregateStore,
  type OpaqueStore,
  type SnapshotTailStore,
} from '../event-store/index.js';
import type { AggregateRoot } from './aggregate-root.js';
import { EVENT_SOURCING_OPTIONS, getAggregateRepositoryToken } from './event-sourcing.constants.js';
import { checkRepositoryOptions, AggregateRepository, type AggregateClass, type RepositoryOptions } from './repository.js';

/** Options every repository takes: the event serializer and the retry budget of a command under contention. */
export type EventSourcingModuleOptions = Omit<RepositoryOptions, 'logger'>;

/** Implemented by a class given to `EventSourcingModule.forRootAsync({ useClass })` or `useExisting`. */
export interface EventSourcingOptionsFactory {
  createEventSourcingOptions(): EventSourcingModuleOptions | Promise<EventSourcingModuleOptions>;
}

const { ConfigurableModuleClass, MODULE_OPTIONS_TOKEN, OPTIONS_TYPE: _OPTIONS_TYPE, ASYNC_OPTIONS_TYPE: _ASYNC_OPTIONS_TYPE } =
  new ConfigurableModuleBuilder<EventSourcingModuleOptions>()
    .setClassMethodName('forRoot')
    .setFactoryMethodName('createEventSourcingOptions')
    // Global by default, as it always was: every forFeature repository takes these options.
    .setExtras({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
    .build();

/** Options of `EventSourcingModule.forRoot`: the repositories' options and `isGlobal` (default `true`). */
export type EventSourcingModuleRootOptions = typeof _OPTIONS_TYPE;

/**
 * Options of `EventSourcingModule.forRootAsync`: `useFactory` (with `inject`), `useClass` or `useExisting` (an
 * `EventSourcingOptionsFactory`), `imports`, and `isGlobal` (default `true`).
 */
export type EventSourcingModuleAsyncOptions = typeof _ASYNC_OPTIONS_TYPE;

/**
 * Repositories of event-sourced aggregates over the event store's tokens, which a global
 * `EventStoreModule.forRoot`/`forRootAsync` (or `EventStoreModule.inMemory()` in tests) provides.
 *
 * @example
 * @Module({ imports: [EventSourcingModule.forFeature([Order])], providers: [OrdersService] })
 * export class OrdersModule {}
 */
@Module({})
export class EventSourcingModule extends ConfigurableModuleClass {
  /**
   * Options for every `forFeature` repository; global unless `isGlobal: false` (then import this module next to
   * the `forFeature` ones that should take the options).
   */
  static override forRoot(options: EventSourcingModuleRootOptions = {}): DynamicModule {
    const { isGlobal: _isGlobal, ...repositoryOptions } = options;
    checkRepositoryOptions(repositoryOptions); // fail at import time, naming the option
    return withCheckedOptions(super.forRoot(options));
  }

  /**
   * `forRoot` with options from `useFactory`, `useClass` or `useExisting`; they are checked when they
   * resolve, so a bad value fails the application's start naming the option.
   *
   * @example
   * EventSourcingModule.forRootAsync({
   *   inject: [ConfigService],
   *   useFactory: (config: ConfigService) => ({ retry: { maxElapsedMs: config.get<number>('COMMAND_RETRY_MS') } }),
   * })
   */
  static override forRootAsync(options: EventSourcingModuleAsyncOptions): DynamicModule {
    if (!options?.useFactory && !options?.useClass && !options?.useExisting) {
      throw new Error(
        'EventSourcingModule.forRootAsync: give one of useFactory (with inject), useClass or useExisting ' +
          '(a provider implementing createEventSourcingOptions())',
      );
    }
    return withCheckedOptions(super.forRootAsync(options));
  }

  /** A `AggregateRepository<A>` per aggregate class, injected with `@InjectAggregateRepository(A)`. */
  static forFeature(aggregateClasses: ReadonlyArray<AggregateClass<AggregateRoot>>): DynamicModule {
    const providers: Provider[] = aggregateClasses.map((aggregateClass) => ({
      provide: getAggregateRepositoryToken(aggregateClass),
      useFactory: (
        events: SnapshotTailStore | undefined,
        aggregates: AggregateStore | undefined,
        opaque: OpaqueStore | undefined,
        options?: EventSourcingModuleOptions,
      ) => {
        // Optional so that a missing store gets an error naming the import, not Nest's generic one.
        if (!events || !aggregates || !opaque) {
          throw new Error(
            `EventSourcingModule.forFeature([${aggregateClass.name}]) needs the event store: import EventStoreModule.forRoot() ` +
              "(or forRootAsync()) with CosmosModule in the application's root module, or EventStoreModule.inMemory() in tests",
          );
        }
        return new AggregateRepository(aggregateClass, { events, aggregates, opaque }, options ?? {});
      },
      inject: [
        { token: SNAPSHOT_TAIL_STORE, optional: true },
        { token: AGGREGATE_STORE, optional: true },
        { token: OPAQUE_STORE, optional: true },
        { token: EVENT_SOURCING_OPTIONS, optional: true },
      ],
    }));
    return { module: EventSourcingModule, providers, exports: providers };
  }
}

/** The root module provides the options, checked, under the token the repositories inject. */
function withCheckedOptions(definition: DynamicModule): DynamicModule {
  return {
    ...definition,
    providers: [
      ...(definition.providers ?? []),
      {
        provide: EVENT_SOURCING_OPTIONS,
        useFactory: (options: EventSourcingModuleOptions | undefined) => {
          const resolved = options ?? {};
          checkRepositoryOptions(resolved);
          return resolved;
        },
        inject: [MODULE_OPTIONS_TOKEN],
      },
    ],
    exports: [EVENT_SOURCING_OPTIONS],
  };
}
