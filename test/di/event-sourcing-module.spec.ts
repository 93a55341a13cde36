/*
 * EventSourcingModule in Nest's DI: forFeature registers an AggregateRepository per aggregate class, injected with
 * @InjectAggregateRepository, over whatever the event store tokens are bound to (here the in-memory stores).
 */
import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  Aggregate,
  AggregateRoot,
  Command,
  ConcurrencyError,
  EventSourcingModule,
  EventStoreModule,
  getAggregateRepositoryToken,
  InjectAggregateRepository,
  JsonEventSerializer,
  On,
  AggregateRepository,
  SNAPSHOT_TAIL_STORE,
  ValidationError,
  type EventEnvelope,
  type Lifecycle,
  type SnapshotTailStore,
  type TipStore,
} from '../../src/index.js';

class Named {
  constructor(readonly name: string) {}
}

@Aggregate({ type: 'Pet' })
class Pet extends AggregateRoot {
  name = '';
  @On(Named) onNamed(event: Named): void {
    this.name = event.name;
  }
}

@Aggregate({ type: 'Plant' })
class Plant extends AggregateRoot {
  name = '';
  @On(Named) onNamed(event: Named): void {
    this.name = event.name;
  }
}

class Name<A extends Pet | Plant> extends Command<A> {
  readonly lifecycle: Lifecycle = 'create';
  constructor(
    readonly aggregateId: string,
    readonly name: string,
  ) {
    super();
  }
  emit(): Named {
    return new Named(this.name);
  }
}

class Rename extends Name<Pet> {
  override readonly lifecycle: Lifecycle = 'mutate';
}

@Injectable()
class Garden {
  constructor(
    @InjectAggregateRepository(Pet) readonly pets: AggregateRepository<Pet>,
    @InjectAggregateRepository(Plant) readonly plants: AggregateRepository<Plant>,
  ) {}
}

@Module({ imports: [EventSourcingModule.forFeature([Pet, Plant])], providers: [Garden], exports: [Garden] })
class GardenModule {}

async function compile(imports: NonNullable<Parameters<typeof Test.createTestingModule>[0]['imports']>) {
  return Test.createTestingModule({ imports: [EventStoreModule.inMemory(), ...imports] }).compile();
}

describe('EventSourcingModule', () => {
  it('forFeature gives each aggregate class its own typed repository', async () => {
    const moduleRef = await compile([GardenModule]);
    const garden = moduleRef.get(Garden);
    expect(garden.pets).toBeInstanceOf(AggregateRepository);
    expect(garden.pets.type).toBe('Pet');
    expect(garden.plants.type).toBe('Plant');
    await garden.pets.apply(new Name<Pet>('x', 'Rex'));
    await garden.plants.apply(new Name<Plant>('x', 'Fern'));
    expect((await garden.pets.load('x')).name).toBe('Rex');
    expect((await garden.plants.load('x')).name).toBe('Fern');
    // Both live in the store bound to the event store tokens, namespaced by type.
    const store = moduleRef.get<SnapshotTailStore>(SNAPSHOT_TAIL_STORE);
    expect((await store.load('Pet/x')).records).toHaveLength(1);
    expect((await store.load('Plant/x')).records).toHaveLength(1);
    expect(moduleRef.get(getAggregateRepositoryToken(Pet))).toBe(garden.pets);
    await moduleRef.close();
  });

  it('forRoot options reach every repository: a custom serializer', async () => {
    const types: string[] = [];
    const json = new JsonEventSerializer();
    const serializer = {
      serialize: (envelope: EventEnvelope) => (types.push(envelope.type), json.serialize(envelope)),
      deserialize: (data: Uint8Array) => json.deserialize(data),
    };
    const moduleRef = await compile([EventSourcingModule.forRoot({ serializer }), GardenModule]);
    await moduleRef.get(Garden).pets.apply(new Name<Pet>('y', 'Tom'));
    expect(types).toEqual(['Named']);
    await moduleRef.close();
  });

  it('forRootAsync takes its options from a factory with injected dependencies', async () => {
    const ATTEMPTS = Symbol('ATTEMPTS');
    @Module({ providers: [{ provide: ATTEMPTS, useValue: 1 }], exports: [ATTEMPTS] })
    class SettingsModule {}
    const moduleRef = await compile([
      EventSourcingModule.forRootAsync({ imports: [SettingsModule], inject: [ATTEMPTS], useFactory: (maxAttempts: number) => ({ maxAttempts }) }),
      GardenModule,
    ]);
    const { pets } = moduleRef.get(Garden);
    await pets.apply(new Name<Pet>('z', 'Rex'));
    // One attempt only: a lost race surfaces at once rather than re-running the command.
    const store = moduleRef.get<SnapshotTailStore & TipStore>(SNAPSHOT_TAIL_STORE);
    const saveWithTip = store.saveWithTip.bind(store);
    let raced = false;
    store.saveWithTip = async (id, records, tip, options) => {
      if (!raced) {
        raced = true;
        await store.save(id, records); // another writer takes the version first
      }
      return saveWithTip(id, records, tip, options);
    };
    await expect(pets.apply(new Rename('z', 'Max'))).rejects.toBeInstanceOf(ConcurrencyError);
    await moduleRef.close();
  });

  it('refuses bad options naming them: forRoot when called, forRootAsync when its factory returns', async () => {
    expect(() => EventSourcingModule.forRoot({ maxAttempts: 0 })).toThrow(ValidationError);
    expect(() => EventSourcingModule.forRoot({ serializer: {} as never })).toThrow(/serializer/);
    expect(() => EventSourcingModule.forRootAsync({} as never)).toThrow(/useFactory/);
    const bad = compile([EventSourcingModule.forRootAsync({ useFactory: () => ({ maxAttempts: 1.5 }) }), GardenModule]);
    await expect(bad).rejects.toThrow(/maxAttempts/);
  });

  it('a repository token is missing until forFeature registers the class', async () => {
    @Injectable()
    class Orphan {
      constructor(@InjectAggregateRepository(Pet) readonly pets: AggregateRepository<Pet>) {}
    }
    await expect(Test.createTestingModule({ imports: [EventStoreModule.inMemory()], providers: [Orphan] }).compile()).rejects.toThrow(
      /Repository<Pet>/,
    );
  });

  it('refuses an aggregate class that does not extend AggregateRoot', () => {
    class NotAnAggregate {
      id = '';
      version = 0;
    }
    expect(() => new AggregateRepository(NotAnAggregate as never, {} as never)).toThrow(/must extend AggregateRoot/);
  });
});
