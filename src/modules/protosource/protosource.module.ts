import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import type { Message } from '@bufbuild/protobuf';
import { OPAQUE_STORE, SNAPSHOT_TAIL_STORE, type OpaqueStore, type SnapshotTailStore } from '../event-store/index.js';
import { getProtosourceRepositoryToken } from './protosource.constants.js';
import { ProtosourceRepository, type ProtosourceAggregateDefinition } from './protosource-repository.js';

/**
 * protosource-compatible repositories over the event store's tokens (`SNAPSHOT_TAIL_STORE`, `OPAQUE_STORE`,
 * which a global `EventStoreModule.forRoot` provides), beside the JSON-mode `EventSourcingModule`.
 *
 * @example
 * @Module({ imports: [ProtosourceModule.forFeature([orderDefinition])], controllers: [OrdersController] })
 * export class ProtosourceOrdersModule {}
 */
@Module({})
export class ProtosourceModule {
  /** A `ProtosourceRepository` per definition, injected with `@InjectProtosourceRepository(schema)`. */
  static forFeature(definitions: ReadonlyArray<ProtosourceAggregateDefinition<Message>>): DynamicModule {
    const providers: Provider[] = definitions.map((definition) => ({
      provide: getProtosourceRepositoryToken(definition.schema),
      useFactory: (events: SnapshotTailStore, opaque: OpaqueStore) => new ProtosourceRepository(definition, { events, opaque }),
      inject: [SNAPSHOT_TAIL_STORE, OPAQUE_STORE],
    }));
    return { module: ProtosourceModule, providers, exports: providers };
  }
}
