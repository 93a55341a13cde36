import { ConfigurableModuleBuilder, Module, type DynamicModule, type Provider } from '@nestjs/common';
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
  /** How long `readAll` waits before handing out a commit second (see `EventStoreOptions`). Default 2. */
  readAllSettleSeconds?: number;
}

/** Implemented by a class given to `EventStoreModule.forRootAsync({ useClass })` or `useExisting`. */
export interface EventStoreOptionsFactory {
  createEventStoreOptions(): EventStoreModuleOptions | Promise<EventStoreModuleOptions>;
}

const {
  ConfigurableModuleClass,
  // The options given to forRoot/forRootAsync, exported with them: a plain `EventStoreModule` import elsewhere
  // takes them too rather than silently running with the defaults.
  MODULE_OPTIONS_TOKEN: ROOT_OPTIONS,
  OPTIONS_TYPE: _OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: _ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<EventStoreModuleOptions>()
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createEventStoreOptions')
  // Global by default so repositories and subscriptions find the stores wherever they are imported.
  .setExtras({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();

/** Options of `EventStoreModule.forRoot`: the store options and `isGlobal` (default `true`). */
export type EventStoreModuleRootOptions = typeof _OPTIONS_TYPE;

/**
 * Options of `EventStoreModule.forRootAsync`: `useFactory` (with `inject`), `useClass` or `useExisting` (an
 * `EventStoreOptionsFactory`), `imports`, and `isGlobal` (default `true`).
 */
export type EventStoreModuleAsyncOptions = typeof _ASYNC_OPTIONS_TYPE;

const EVENT_STORE = Symbol('EVENT_STORE');
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

/** A root module also exports its options, for plain `EventStoreModule` imports elsewhere. */
function exportingOptions(definition: DynamicModule): DynamicModule {
  return { ...definition, exports: [...TOKENS, ROOT_OPTIONS] };
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
      // Checked when resolved: forRootAsync's factory fails the start naming the option.
      useFactory: (root?: EventStoreModuleOptions) => {
        const options = root ?? {};
        resolveStoreOptions(options);
        return options;
      },
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
export class EventStoreModule extends ConfigurableModuleClass {
  /**
   * The Cosmos DB stores with options, global unless `isGlobal: false`: feature modules inject the store
   * tokens without importing anything, and a plain `EventStoreModule` import takes these options too.
   */
  static override forRoot(options: EventStoreModuleRootOptions = {}): DynamicModule {
    const { isGlobal: _isGlobal, ...storeOptions } = options;
    resolveStoreOptions(storeOptions); // fail at import time, naming the option
    return exportingOptions(super.forRoot(options));
  }

  /**
   * `forRoot` with the options from `useFactory`, `useClass` or `useExisting`, checked when they resolve.
   *
   * @example
   * EventStoreModule.forRootAsync(eventStoreConfig.asProvider()) // nest-cosmos-eventstore/config
   *
   * @example
   * EventStoreModule.forRootAsync({
   *   inject: [ConfigService],
   *   useFactory: (config: ConfigService) => ({ eventTtlSeconds: config.get<number>('EVENT_TTL_SECONDS') }),
   * })
   */
  static override forRootAsync(options: EventStoreModuleAsyncOptions): DynamicModule {
    if (!options?.useFactory && !options?.useClass && !options?.useExisting) {
      throw new Error(
        'EventStoreModule.forRootAsync: give one of useFactory (with inject), useClass or useExisting ' +
          '(a provider implementing createEventStoreOptions())',
      );
    }
    return exportingOptions(super.forRootAsync(options));
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
