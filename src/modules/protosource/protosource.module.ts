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
      useFactory: (events: SnapshotTailStore | undefined, opaque: OpaqueStore | undefined) => {
        // Optional so that a missing store gets an error naming the import, not Nest's generic one.
        if (!events || !opaque) {
          throw new Error(
            `ProtosourceModule.forFeature([${definition.schema.name}]) needs the event store: import EventStoreModule.forRoot() ` +
              "(or forRootAsync()) with CosmosModule in the application's root module, or EventStoreModule.inMemory() in tests",
          );
        }
        return new ProtosourceRepository(definition, { events, opaque });
      },
      inject: [
        { token: SNAPSHOT_TAIL_STORE, optional: true },
        { token: OPAQUE_STORE, optional: true },
      ],
    }));
    return { module: ProtosourceModule, providers, exports: providers };
  }
}
