/*
 * One module style: EventStoreModule and EventSourcingModule take forRoot/forRootAsync with useFactory,
 * useClass and useExisting, and isGlobal as an option (default true, as before), never forced.
 */
import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  Aggregate,
  AggregateRoot,
  Command,
  EventSourcingModule,
  EventStoreModule,
  InjectAggregateRepository,
  JsonEventSerializer,
  On,
  AggregateRepository,
  type EventEnvelope,
  type EventSourcingModuleOptions,
  type EventSourcingOptionsFactory,
  type EventStoreModuleOptions,
  type EventStoreOptionsFactory,
  type Lifecycle,
} from '../../src/index.js';

class Named {
  constructor(readonly name: string) {}
}

@Aggregate({ type: 'Cat' })
class Cat extends AggregateRoot {
  name = '';
  @On(Named) onNamed(event: Named): void {
    this.name = event.name;
  }
}

class Name extends Command<Cat> {
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

const seen: string[] = [];
const json = new JsonEventSerializer();
const countingSerializer = {
  serialize: (envelope: EventEnvelope) => (seen.push(envelope.type), json.serialize(envelope)),
  deserialize: (data: Uint8Array) => json.deserialize(data),
};

@Injectable()
class RepositoryOptionsFactory implements EventSourcingOptionsFactory {
  createEventSourcingOptions(): EventSourcingModuleOptions {
    return { serializer: countingSerializer };
  }
}

@Injectable()
class Cats {
  constructor(@InjectAggregateRepository(Cat) readonly repository: AggregateRepository<Cat>) {}
}

@Module({ imports: [EventSourcingModule.forFeature([Cat])], providers: [Cats], exports: [Cats] })
class CatsModule {}

async function nameACat(imports: unknown[]): Promise<void> {
  const moduleRef = await Test.createTestingModule({ imports: [EventStoreModule.inMemory(), ...(imports as never[]), CatsModule] }).compile();
  try {
    await moduleRef.get(Cats).repository.apply(new Name(`c-${seen.length}`, 'Tom'));
  } finally {
    await moduleRef.close();
  }
}

describe('EventSourcingModule', () => {
  beforeEach(() => {
    seen.length = 0;
  });

  it('forRootAsync takes useClass', async () => {
    await nameACat([EventSourcingModule.forRootAsync({ useClass: RepositoryOptionsFactory })]);
    expect(seen).toEqual(['Named']);
  });

  it('forRootAsync takes useExisting from an imported module', async () => {
    @Module({ providers: [RepositoryOptionsFactory], exports: [RepositoryOptionsFactory] })
    class FactoryModule {}
    await nameACat([EventSourcingModule.forRootAsync({ imports: [FactoryModule], useExisting: RepositoryOptionsFactory })]);
    expect(seen).toEqual(['Named']);
  });

  it('is global by default; with isGlobal: false its options stay in the module that imports it', async () => {
    expect(EventSourcingModule.forRoot({ serializer: countingSerializer }).global).toBe(true);
    const local = EventSourcingModule.forRoot({ serializer: countingSerializer, isGlobal: false });
    expect(local.global).toBe(false);
    // Imported at the root only, not global: the feature module's repositories do not see its serializer.
    await nameACat([local]);
    expect(seen).toEqual([]);
  });

  it('forRootAsync without a way to build the options says which to give', () => {
    expect(() => EventSourcingModule.forRootAsync({} as never)).toThrow(/useFactory \(with inject\), useClass or useExisting/);
  });
});

@Injectable()
class StoreOptionsFactory implements EventStoreOptionsFactory {
  createEventStoreOptions(): EventStoreModuleOptions {
    return { eventTtlSeconds: -1 };
  }
}

describe('EventStoreModule', () => {
  it('forRootAsync takes useClass and useExisting, and checks what they resolve to', async () => {
    for (const definition of [
      EventStoreModule.forRootAsync({ useClass: StoreOptionsFactory }),
      EventStoreModule.forRootAsync({ useExisting: StoreOptionsFactory, imports: [FactoryHolder] }),
    ]) {
      await expect(Test.createTestingModule({ imports: [definition] }).compile()).rejects.toThrow(/eventTtlSeconds/);
    }
  });

  it('is global by default, and isGlobal: false is honoured', () => {
    expect(EventStoreModule.forRoot().global).toBe(true);
    expect(EventStoreModule.forRoot({ isGlobal: false }).global).toBe(false);
    expect(EventStoreModule.forRootAsync({ useFactory: () => ({}), isGlobal: false }).global).toBe(false);
  });

  it('forRootAsync without a way to build the options says which to give', () => {
    expect(() => EventStoreModule.forRootAsync({} as never)).toThrow(/useFactory \(with inject\), useClass or useExisting/);
  });
});

@Module({ providers: [StoreOptionsFactory], exports: [StoreOptionsFactory] })
class FactoryHolder {}
