import { Injectable, Logger, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { CosmosClient, type Container } from '@azure/cosmos';
import { jest } from '@jest/globals';
import {
  AGGREGATE_STORE,
  AGGREGATES_CONTAINER,
  COSMOS_CLIENT,
  CosmosEventStore,
  CosmosModule,
  ensureContainers,
  ensureDatabase,
  EVENTS_CONTAINER,
  EventStoreModule,
  InjectAggregatesContainer,
  InjectCosmosClient,
  InjectEventsContainer,
  InjectStore,
  OPAQUE_STORE,
  SNAPSHOT_TAIL_STORE,
  STORE,
  ValidationError,
  type CosmosModuleOptions,
  type CosmosOptionsFactory,
  type Store,
} from '../../src/index.js';
import { startEmbeddedCosmos, type EmbeddedCosmos } from '../../src/testing.js';

let cosmos: EmbeddedCosmos;
let databaseSeq = 0;

beforeAll(async () => {
  cosmos = await startEmbeddedCosmos();
});
afterAll(() => cosmos.close());

function options(overrides: Partial<CosmosModuleOptions> = {}): CosmosModuleOptions {
  return { endpoint: cosmos.endpoint, key: cosmos.key, databaseId: `di-${++databaseSeq}`, ...overrides };
}

async function boot(imports: unknown[], providers: unknown[] = []) {
  const moduleRef = await Test.createTestingModule({
    imports: imports as never[],
    providers: providers as never[],
  }).compile();
  return moduleRef.createNestApplication({ logger: false }).init();
}

async function containerIds(client: CosmosClient, databaseId: string): Promise<string[]> {
  const { resources } = await client.database(databaseId).containers.readAll().fetchAll();
  return resources.map((c) => c.id).sort();
}

@Injectable()
class UsesContainers {
  constructor(
    @InjectCosmosClient() readonly client: CosmosClient,
    @InjectEventsContainer() readonly events: Container,
    @InjectAggregatesContainer() readonly aggregates: Container,
  ) {}
}

describe('CosmosModule.forRoot', () => {
  it('provides the client and both containers, creating them with the right partition keys', async () => {
    const opts = options();
    const app = await boot([CosmosModule.forRoot(opts)], [UsesContainers]);
    const { client, events, aggregates } = app.get(UsesContainers);
    expect(client).toBeInstanceOf(CosmosClient);
    expect(app.get(COSMOS_CLIENT)).toBe(client);
    expect(events.id).toBe('events');
    expect(aggregates.id).toBe('aggregates');
    const { resource: ev } = await events.read();
    const { resource: ag } = await aggregates.read();
    expect(ev?.partitionKey?.paths).toEqual(['/a']);
    expect(ag?.partitionKey?.paths).toEqual(['/pk']);
    expect(ev?.defaultTtl).toBe(-1);
    expect(ag?.defaultTtl).toBe(-1);
    await app.close();
  });

  it('uses custom container ids', async () => {
    const opts = options({ eventsContainerId: 'ev2', aggregatesContainerId: 'ag2' });
    const app = await boot([CosmosModule.forRoot(opts)]);
    expect(app.get<Container>(EVENTS_CONTAINER).id).toBe('ev2');
    expect(app.get<Container>(AGGREGATES_CONTAINER).id).toBe('ag2');
    expect(await containerIds(app.get(COSMOS_CLIENT), opts.databaseId)).toEqual(['ag2', 'ev2']);
    await app.close();
  });

  it('creates nothing with ensure: false', async () => {
    const opts = options({ ensure: false });
    const app = await boot([CosmosModule.forRoot(opts)]);
    const client = app.get<CosmosClient>(COSMOS_CLIENT);
    const { resources } = await client.databases.readAll().fetchAll();
    expect(resources.map((d) => d.id)).not.toContain(opts.databaseId);
    await app.close();
  });

  it('refuses an existing container whose partition key differs, naming it', async () => {
    const opts = options();
    const client = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key });
    const { database } = await client.databases.createIfNotExists({ id: opts.databaseId });
    await database.containers.create({ id: 'events', partitionKey: { paths: ['/aggregateId'] } });
    await expect(boot([CosmosModule.forRoot(opts)])).rejects.toThrow(/"events".*\/aggregateId/);
    client.dispose();
  });

  it.each([
    ['without a version, as protosource\'s Go EnsureContainers creates them', undefined],
    ['of partition-key definition version 1', 1],
  ])('accepts existing containers %s, warning of the 101-byte key limit', async (_what, version) => {
    const opts = options();
    const client = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key });
    const { database } = await client.databases.createIfNotExists({ id: opts.databaseId });
    for (const [id, path] of [['events', '/a'], ['aggregates', '/pk']]) {
      await database.containers.create({ id, partitionKey: version === undefined ? { paths: [path] } : { paths: [path], version } });
      const { resource } = await database.container(id).read();
      expect(resource?.partitionKey?.version ?? 1).toBe(1);
    }
    const warnings: string[] = [];
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation((message: unknown) => {
      warnings.push(String(message));
    });
    try {
      const app = await boot([CosmosModule.forRoot(opts), EventStoreModule]);
      await app.get(STORE).save('go-made', [{ version: 1, data: new Uint8Array([1]) }]);
      expect((await app.get(STORE).load('go-made')).records).toHaveLength(1);
      await app.close();
    } finally {
      warn.mockRestore();
      client.dispose();
    }
    expect(warnings.filter((w) => /version 1: partition key values are limited to 101 bytes/.test(w))).toHaveLength(2);
  });

  it('disposes the client when start-up fails', async () => {
    const opts = options();
    const client = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key });
    const { database } = await client.databases.createIfNotExists({ id: opts.databaseId });
    await database.containers.create({ id: 'events', partitionKey: { paths: ['/id'], version: 2 } });
    const dispose = jest.spyOn(CosmosClient.prototype, 'dispose');
    try {
      await expect(boot([CosmosModule.forRoot(opts)])).rejects.toThrow(/"events"/);
      expect(dispose).toHaveBeenCalledTimes(1);
    } finally {
      dispose.mockRestore();
      client.dispose();
    }
  });

  it('rejects bad options with an error naming the option', async () => {
    await expect(boot([CosmosModule.forRoot(options({ endpoint: 'not a url' }))])).rejects.toThrow(/"endpoint"/);
    await expect(boot([CosmosModule.forRoot(options({ databaseId: '' }))])).rejects.toThrow(/"databaseId"/);
  });

  it('disposes the client when the application closes', async () => {
    const app = await boot([CosmosModule.forRoot(options())]);
    const dispose = jest.spyOn(app.get<CosmosClient>(COSMOS_CLIENT), 'dispose');
    await app.close();
    expect(dispose).toHaveBeenCalledTimes(1);
  });

  it('is global by default, so EventStoreModule finds the containers from a feature module', async () => {
    @Module({ imports: [EventStoreModule] })
    class FeatureModule {}
    const app = await boot([CosmosModule.forRoot(options()), FeatureModule]);
    expect(app.get(STORE)).toBeInstanceOf(CosmosEventStore);
    await app.close();
  });

  it('is not visible to other modules with isGlobal: false', async () => {
    @Module({ imports: [EventStoreModule] })
    class FeatureModule {}
    await expect(boot([CosmosModule.forRoot({ ...options(), isGlobal: false }), FeatureModule])).rejects.toThrow(
      /EventStoreModule needs the Cosmos DB (events|aggregates) container: import CosmosModule/,
    );
  });
});

describe('CosmosModule.forRootAsync', () => {
  const CONFIG = Symbol('CONFIG');

  @Module({ providers: [{ provide: CONFIG, useFactory: () => options({ eventsContainerId: 'from-config' }) }], exports: [CONFIG] })
  class ConfigLikeModule {}

  @Injectable()
  class OptionsFactory implements CosmosOptionsFactory {
    createCosmosOptions(): CosmosModuleOptions {
      return options({ eventsContainerId: 'from-class' });
    }
  }

  @Module({ providers: [OptionsFactory], exports: [OptionsFactory] })
  class FactoryModule {}

  it('takes useFactory with imports and inject', async () => {
    const app = await boot([
      CosmosModule.forRootAsync({
        imports: [ConfigLikeModule],
        inject: [CONFIG],
        useFactory: (config: CosmosModuleOptions) => config,
      }),
    ]);
    expect(app.get<Container>(EVENTS_CONTAINER).id).toBe('from-config');
    await app.close();
  });

  it('takes an async useFactory', async () => {
    const app = await boot([
      CosmosModule.forRootAsync({ useFactory: async () => options({ aggregatesContainerId: 'async' }) }),
    ]);
    expect(app.get<Container>(AGGREGATES_CONTAINER).id).toBe('async');
    await app.close();
  });

  it('takes useClass', async () => {
    const app = await boot([CosmosModule.forRootAsync({ useClass: OptionsFactory })]);
    expect(app.get<Container>(EVENTS_CONTAINER).id).toBe('from-class');
    await app.close();
  });

  it('takes useExisting from an imported module', async () => {
    const app = await boot([CosmosModule.forRootAsync({ imports: [FactoryModule], useExisting: OptionsFactory })]);
    expect(app.get<Container>(EVENTS_CONTAINER).id).toBe('from-class');
    await app.close();
  });

  it('says what is missing when given no way to build options', () => {
    expect(() => CosmosModule.forRootAsync({ imports: [] })).toThrow(/useFactory.*useClass.*useExisting/);
  });
});

describe('EventStoreModule', () => {
  it('binds every store token to one Cosmos store instance, with the opaque store on the aggregates container', async () => {
    const app = await boot([CosmosModule.forRoot(options()), EventStoreModule]);
    const store = app.get(STORE);
    expect(store).toBeInstanceOf(CosmosEventStore);
    expect(app.get(SNAPSHOT_TAIL_STORE)).toBe(store);
    expect(app.get(AGGREGATE_STORE)).toBe(store);
    await app.get(AGGREGATE_STORE).saveAggregate({ keys: () => ({ pk: 'p', sk: 's' }), version: 3 });
    expect((await app.get(OPAQUE_STORE).get('p', 's')).version).toBe(3);
    await app.close();
  });

  it('forRoot applies its options: eventTtlSeconds stamps events', async () => {
    const app = await boot([CosmosModule.forRoot(options()), EventStoreModule.forRoot({ eventTtlSeconds: 60 })]);
    const store = app.get(SNAPSHOT_TAIL_STORE);
    const before = Math.floor(Date.now() / 1000);
    await store.save('a', [{ version: 1, data: new Uint8Array([1]) }]);
    const [record] = (await store.load('a')).records;
    expect(record.ttl).toBeGreaterThanOrEqual(before + 60);
    expect(record.ttl).toBeLessThanOrEqual(before + 62);
    await app.close();
  });

  it('forRootAsync takes its options from a factory and checks them when it resolves', async () => {
    const TTL = Symbol('TTL');
    @Module({ providers: [{ provide: TTL, useValue: 120 }], exports: [TTL] })
    class SettingsModule {}
    const app = await boot([
      CosmosModule.forRoot(options()),
      EventStoreModule.forRootAsync({ imports: [SettingsModule], inject: [TTL], useFactory: (ttl: number) => ({ eventTtlSeconds: ttl }) }),
    ]);
    const store = app.get(SNAPSHOT_TAIL_STORE);
    const before = Math.floor(Date.now() / 1000);
    await store.save('a', [{ version: 1, data: new Uint8Array([1]) }]);
    expect((await store.load('a')).records[0].ttl).toBeGreaterThanOrEqual(before + 120);
    await app.close();

    await expect(
      boot([CosmosModule.forRoot(options()), EventStoreModule.forRootAsync({ useFactory: async () => ({ eventTtlSeconds: -5 }) })]),
    ).rejects.toThrow(/eventTtlSeconds/);
    expect(() => EventStoreModule.forRootAsync({} as never)).toThrow(/useFactory/);
  });

  it('forRoot is global by default: feature modules inject the store tokens without importing the module', async () => {
    @Injectable()
    class Feature {
      constructor(@InjectStore() readonly store: Store) {}
    }
    @Module({ providers: [Feature] })
    class FeatureModule {}
    const app = await boot([CosmosModule.forRoot(options()), EventStoreModule.forRoot(), FeatureModule]);
    expect(app.get(Feature).store).toBe(app.get(STORE));
    await app.close();
    await expect(
      boot([CosmosModule.forRoot(options()), EventStoreModule.forRoot({ isGlobal: false }), FeatureModule]),
    ).rejects.toThrow(/STORE/);
  });

  it('a plain EventStoreModule import in a feature module takes the options given to forRoot', async () => {
    @Injectable()
    class Feature {
      constructor(@InjectStore() readonly store: Store) {}
    }
    @Module({ imports: [EventStoreModule], providers: [Feature] })
    class FeatureModule {}
    for (const root of [
      EventStoreModule.forRoot({ eventTtlSeconds: 900 }),
      EventStoreModule.forRootAsync({ useFactory: async () => ({ eventTtlSeconds: 900 }) }),
    ]) {
      const app = await boot([CosmosModule.forRoot(options()), root, FeatureModule]);
      const before = Math.floor(Date.now() / 1000);
      await app.get(Feature).store.save('b', [{ version: 1, data: new Uint8Array([2]) }]);
      expect((await app.get(Feature).store.load('b')).records[0].ttl).toBeGreaterThanOrEqual(before + 900);
      await app.close();
    }
  });

  it('forRoot refuses invalid options naming the field', () => {
    expect(() => EventStoreModule.forRoot({ eventTtlSeconds: -1 })).toThrow(ValidationError);
    expect(() => EventStoreModule.forRoot({ compressThreshold: 1.5 })).toThrow(/compressThreshold/);
  });
});

describe('ensureDatabase and ensureContainers', () => {
  it('are idempotent and safe when several instances start at once', async () => {
    const client = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key });
    const databaseId = `race-${++databaseSeq}`;
    await Promise.all(
      Array.from({ length: 5 }, async () => ensureContainers(await ensureDatabase(client, databaseId), 'events', 'aggregates')),
    );
    await ensureContainers(await ensureDatabase(client, databaseId), 'events', 'aggregates');
    expect(await containerIds(client, databaseId)).toEqual(['aggregates', 'events']);
    client.dispose();
  });
});
