import { Module, type DynamicModule, type FactoryProvider, type ModuleMetadata, type Provider } from '@nestjs/common';
import {
  AGGREGATE_STORE,
  OPAQUE_STORE,
  SNAPSHOT_TAIL_STORE,
  type AggregateStore,
  type OpaqueStore,
  type SnapshotTailStore,
} from '../event-store/index.js';
import type { AggregateRoot } from './aggregate-root.js';
import { EVENT_SOURCING_OPTIONS, getRepositoryToken } from './event-sourcing.constants.js';
import { checkRepositoryOptions, Repository, type AggregateClass, type RepositoryOptions } from './repository.js';

/** Options every repository takes: the event serializer and the retry budget of a command under contention. */
export type EventSourcingModuleOptions = Omit<RepositoryOptions, 'logger'>;

/** Options of `EventSourcingModule.forRootAsync`: the options come from a factory, e.g. over `ConfigService`. */
export interface EventSourcingModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  useFactory: FactoryProvider<EventSourcingModuleOptions | undefined>['useFactory'];
  inject?: FactoryProvider['inject'];
}

/**
 * Repositories of event-sourced aggregates over the event store's tokens, which a global
 * `EventStoreModule.forRoot`/`forRootAsync` (or `EventStoreModule.inMemory()` in tests) provides.
 *
 * @example
 * @Module({ imports: [EventSourcingModule.forFeature([Order])], providers: [OrdersService] })
 * export class OrdersModule {}
 */
@Module({})
export class EventSourcingModule {
  /** Options for every `forFeature` repository; global, so import it once at the root. */
  static forRoot(options: EventSourcingModuleOptions = {}): DynamicModule {
    checkRepositoryOptions(options); // fail at import time, naming the option
    return rootModule({ provide: EVENT_SOURCING_OPTIONS, useValue: options });
  }

  /**
   * `forRoot` with options from a factory; they are checked when the factory returns, so a bad value fails
   * the application's start naming the option.
   *
   * @example
   * EventSourcingModule.forRootAsync({
   *   inject: [ConfigService],
   *   useFactory: (config: ConfigService) => ({ retry: { maxElapsedMs: config.get<number>('COMMAND_RETRY_MS') } }),
   * })
   */
  static forRootAsync(options: EventSourcingModuleAsyncOptions): DynamicModule {
    if (typeof options?.useFactory !== 'function') {
      throw new Error('EventSourcingModule.forRootAsync: give useFactory (with inject) returning EventSourcingModuleOptions');
    }
    const { useFactory, inject = [], imports = [] } = options;
    const provider: Provider = {
      provide: EVENT_SOURCING_OPTIONS,
      useFactory: async (...args: unknown[]) => {
        const resolved = (await useFactory(...args)) ?? {};
        checkRepositoryOptions(resolved);
        return resolved;
      },
      inject,
    };
    return rootModule(provider, imports);
  }

  /** A `Repository<A>` per aggregate class, injected with `@InjectRepository(A)`. */
  static forFeature(aggregateClasses: ReadonlyArray<AggregateClass<AggregateRoot>>): DynamicModule {
    const providers: Provider[] = aggregateClasses.map((aggregateClass) => ({
      provide: getRepositoryToken(aggregateClass),
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
        return new Repository(aggregateClass, { events, aggregates, opaque }, options ?? {});
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

function rootModule(options: Provider, imports: ModuleMetadata['imports'] = []): DynamicModule {
  return { module: EventSourcingModule, global: true, imports, providers: [options], exports: [EVENT_SOURCING_OPTIONS] };
}
