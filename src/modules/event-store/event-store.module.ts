import { Module, type DynamicModule, type FactoryProvider, type ModuleMetadata, type Provider } from '@nestjs/common';
import type { Container } from '@azure/cosmos';
import { AGGREGATES_CONTAINER, EVENTS_CONTAINER } from '../cosmos/index.js';
import {
  AGGREGATE_STORE,
  EVENT_STORE_OPTIONS,
  OPAQUE_STORE,
  SNAPSHOT_TAIL_STORE,
  STORE,
} from './event-store.constants.js';
import type { OpaqueStore } from './event-store.interfaces.js';
import { CosmosEventStore } from './cosmos-event-store.js';
import { resolveStoreOptions } from './event-store-base.js';
import type { StoreRetryOptions } from './transient-faults.js';
import { CosmosOpaqueStore } from './cosmos-opaque-store.js';
import { InMemoryEventStore } from './in-memory-event-store.js';
import { InMemoryOpaqueStore } from './in-memory-opaque-store.js';

/** Options of `EventStoreModule.forRoot` and `EventStoreModule.inMemory`. */
export interface EventStoreModuleOptions {
  /** Expiry given to events that carry none of their own; absent or 0: never expire. */
  eventTtlSeconds?: number;
  /** Materialized bodies of at least this many bytes are gzip-compressed. Default 300. */
  compressThreshold?: number;
  /**
   * Retries of transient Cosmos DB failures by the stores, the event store's and the aggregates store's alike
   * (see `StoreRetryOptions`); throttling is the client's.
   */
  retries?: StoreRetryOptions;
}

/** Options of `EventStoreModule.forRootAsync`: the options come from a factory, e.g. over `ConfigService`. */
export interface EventStoreModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  useFactory: FactoryProvider<EventStoreModuleOptions>['useFactory'];
  inject?: FactoryProvider['inject'];
  /** Provide the store tokens to every module, not only to the importer. Default `true`. */
  isGlobal?: boolean;
}

const EVENT_STORE = Symbol('EVENT_STORE');
// The options given to forRoot/forRootAsync, exported with them: a plain `EventStoreModule` import elsewhere
// takes them too rather than silently running with the defaults.
const ROOT_OPTIONS = Symbol('EVENT_STORE_ROOT_OPTIONS');
const TOKENS = [STORE, SNAPSHOT_TAIL_STORE, AGGREGATE_STORE, OPAQUE_STORE];

// One store instance behind the three store interfaces.
const aliases: Provider[] = [STORE, SNAPSHOT_TAIL_STORE, AGGREGATE_STORE].map((token) => ({
  provide: token,
  useExisting: EVENT_STORE,
}));

// Injected as optional so that a missing CosmosModule gets an error naming it, rather than Nest's generic
// one, which points into this module and suggests editing it.
function required(container: Container | undefined, which: 'events' | 'aggregates'): Container {
  if (container) return container;
  throw new Error(
    `EventStoreModule needs the Cosmos DB ${which} container: import CosmosModule.forRoot() or CosmosModule.forRootAsync() ` +
      "in the application's root module (it is global by default), or use EventStoreModule.inMemory() in tests",
  );
}

function optionsProvider(options: EventStoreModuleOptions): Provider {
  resolveStoreOptions(options); // fail at import time, naming the option
  return { provide: EVENT_STORE_OPTIONS, useValue: options };
}

function rootModule(rootOptions: Provider, isGlobal: boolean, imports: ModuleMetadata['imports'] = []): DynamicModule {
  return {
    module: EventStoreModule,
    global: isGlobal,
    imports,
    providers: [rootOptions, { provide: EVENT_STORE_OPTIONS, useExisting: ROOT_OPTIONS }],
    exports: [...TOKENS, ROOT_OPTIONS],
  };
}

/**
 * Binds `STORE`, `SNAPSHOT_TAIL_STORE`, `AGGREGATE_STORE` and `OPAQUE_STORE` to the Cosmos DB stores on the
 * containers `CosmosModule` provides. Inject the tokens, never the classes.
 *
 * @example
 * @Module({ imports: [CosmosModule.forRoot({ ... }), EventStoreModule.forRoot({ eventTtlSeconds: 86_400 })] })
 * export class AppModule {}
 *
 * @Injectable()
 * export class Orders {
 *   constructor(@InjectSnapshotTailStore() private readonly store: SnapshotTailStore) {}
 * }
 */
@Module({
  providers: [
    {
      provide: EVENT_STORE_OPTIONS,
      useFactory: (root?: EventStoreModuleOptions) => root ?? {},
      inject: [{ token: ROOT_OPTIONS, optional: true }],
    },
    {
      provide: OPAQUE_STORE,
      useFactory: (aggregates: Container | undefined, options: EventStoreModuleOptions) =>
        new CosmosOpaqueStore(required(aggregates, 'aggregates'), { retries: options.retries }),
      inject: [{ token: AGGREGATES_CONTAINER, optional: true }, EVENT_STORE_OPTIONS],
    },
    {
      provide: EVENT_STORE,
      useFactory: (events: Container | undefined, opaqueStore: OpaqueStore, options: EventStoreModuleOptions) =>
        new CosmosEventStore(required(events, 'events'), { ...options, opaqueStore }),
      inject: [{ token: EVENTS_CONTAINER, optional: true }, OPAQUE_STORE, EVENT_STORE_OPTIONS],
    },
    ...aliases,
  ],
  exports: TOKENS,
})
export class EventStoreModule {
  /**
   * The Cosmos DB stores with options, global unless `isGlobal: false`: feature modules inject the store
   * tokens without importing anything, and a plain `EventStoreModule` import takes these options too.
   */
  static forRoot(options: EventStoreModuleOptions & { isGlobal?: boolean } = {}): DynamicModule {
    const { isGlobal = true, ...storeOptions } = options;
    resolveStoreOptions(storeOptions); // fail at import time, naming the option
    return rootModule({ provide: ROOT_OPTIONS, useValue: storeOptions }, isGlobal);
  }

  /**
   * `forRoot` with the options from a factory, checked when the factory resolves.
   *
   * @example
   * EventStoreModule.forRootAsync({
   *   inject: [ConfigService],
   *   useFactory: (config: ConfigService) => ({ eventTtlSeconds: config.get<number>('EVENT_TTL_SECONDS') }),
   * })
   */
  static forRootAsync(options: EventStoreModuleAsyncOptions): DynamicModule {
    if (typeof options?.useFactory !== 'function') {
      throw new Error('EventStoreModule.forRootAsync: give useFactory (with inject) returning EventStoreModuleOptions');
    }
    const provider: Provider = {
      provide: ROOT_OPTIONS,
      useFactory: async (...args: unknown[]) => {
        const resolved: EventStoreModuleOptions = (await options.useFactory(...args)) ?? {};
        resolveStoreOptions(resolved);
        return resolved;
      },
      inject: options.inject ?? [],
    };
    return rootModule(provider, options.isGlobal ?? true, options.imports);
  }

  /**
   * The same tokens bound to `InMemoryEventStore` and `InMemoryOpaqueStore`, needing no Cosmos DB: for
   * consumers' unit tests, e.g. `.overrideModule(EventStoreModule).useModule(EventStoreModule.inMemory())`.
   * Global unless `isGlobal: false`, like `forRoot`, so repositories of `EventSourcingModule.forFeature` see it.
   */
  static inMemory(options: EventStoreModuleOptions & { isGlobal?: boolean } = {}): DynamicModule {
    const { isGlobal = true, ...storeOptions } = options;
    return {
      module: InMemoryEventStoreModule,
      global: isGlobal,
      providers: [
        optionsProvider(storeOptions),
        { provide: OPAQUE_STORE, useFactory: () => new InMemoryOpaqueStore() },
        {
          provide: EVENT_STORE,
          useFactory: (opaqueStore: OpaqueStore, opts: EventStoreModuleOptions) =>
            new InMemoryEventStore({ ...opts, opaqueStore }),
          inject: [OPAQUE_STORE, EVENT_STORE_OPTIONS],
        },
        ...aliases,
      ],
      exports: TOKENS,
    };
  }
}

/** The module `EventStoreModule.inMemory()` returns: no Cosmos DB dependency. */
@Module({})
class InMemoryEventStoreModule {}
