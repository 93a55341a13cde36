import { Module, type DynamicModule, type Provider } from '@nestjs/common';
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
import { Repository, type AggregateClass, type RepositoryOptions } from './repository.js';

/** Options every repository takes: the event serializer and the attempts of a command under contention. */
export type EventSourcingModuleOptions = Omit<RepositoryOptions, 'logger'>;

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
    return {
      module: EventSourcingModule,
      global: true,
      providers: [{ provide: EVENT_SOURCING_OPTIONS, useValue: options }],
      exports: [EVENT_SOURCING_OPTIONS],
    };
  }

  /** A `Repository<A>` per aggregate class, injected with `@InjectRepository(A)`. */
  static forFeature(aggregateClasses: ReadonlyArray<AggregateClass<AggregateRoot>>): DynamicModule {
    const providers: Provider[] = aggregateClasses.map((aggregateClass) => ({
      provide: getRepositoryToken(aggregateClass),
      useFactory: (events: SnapshotTailStore, aggregates: AggregateStore, opaque: OpaqueStore, options?: EventSourcingModuleOptions) =>
        new Repository(aggregateClass, { events, aggregates, opaque }, options ?? {}),
      inject: [SNAPSHOT_TAIL_STORE, AGGREGATE_STORE, OPAQUE_STORE, { token: EVENT_SOURCING_OPTIONS, optional: true }],
    }));
    return { module: EventSourcingModule, providers, exports: providers };
  }
}
