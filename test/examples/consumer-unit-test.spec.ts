/*
 * How a consumer unit-tests its own module without Cosmos DB: swap the event store for the in-memory one
 * (same contract: conflicts, ordering, tail), or for a jest mock when only the calls matter.
 */
import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { jest } from '@jest/globals';
import {
  Aggregate,
  AggregateRoot,
  Command,
  ConcurrencyError,
  EventSourcingModule,
  EventStoreModule,
  InjectAggregateRepository,
  InjectSnapshotTailStore,
  On,
  type Lifecycle,
  AggregateRepository,
  SNAPSHOT_TAIL_STORE,
  STORE,
  type SnapshotTailStore,
  type Store,
} from '../../src/index.js';
import { InMemoryEventStore } from '../../src/testing.js';

// --- the consumer's code -------------------------------------------------------------------------
@Injectable()
class Ledger {
  constructor(@InjectSnapshotTailStore() private readonly store: SnapshotTailStore) {}

  async deposit(account: string, amount: number): Promise<number> {
    const [last] = (await this.store.loadTail(account, 1)).records;
    const version = (last?.version ?? 0) + 1;
    await this.store.save(account, [{ version, data: new TextEncoder().encode(JSON.stringify({ amount })) }]);
    return version;
  }

  async balance(account: string): Promise<number> {
    const { records } = await this.store.load(account);
    return records.reduce((sum, r) => sum + (JSON.parse(new TextDecoder().decode(r.data)) as { amount: number }).amount, 0);
  }
}

@Module({ imports: [EventStoreModule], providers: [Ledger] })
class LedgerModule {}
// -------------------------------------------------------------------------------------------------

describe('a consumer module tested with the in-memory store', () => {
  it('swaps the whole EventStoreModule for EventStoreModule.inMemory()', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [LedgerModule] })
      .overrideModule(EventStoreModule)
      .useModule(EventStoreModule.inMemory())
      .compile();
    const ledger = moduleRef.get(Ledger);
    expect(await ledger.deposit('acc-1', 10)).toBe(1);
    expect(await ledger.deposit('acc-1', 5)).toBe(2);
    expect(await ledger.balance('acc-1')).toBe(15);
  });

  it('overrides STORE and SNAPSHOT_TAIL_STORE with an in-memory store of its own, seeded with history', async () => {
    const seeded = new InMemoryEventStore();
    await seeded.save('acc-2', [{ version: 1, data: new TextEncoder().encode(JSON.stringify({ amount: 100 })) }]);
    // overrideProvider needs a module graph that resolves without Cosmos DB: hence the in-memory module first.
    const moduleRef = await Test.createTestingModule({ imports: [LedgerModule] })
      .overrideModule(EventStoreModule)
      .useModule(EventStoreModule.inMemory())
      .overrideProvider(STORE)
      .useValue(seeded)
      .overrideProvider(SNAPSHOT_TAIL_STORE)
      .useValue(seeded)
      .compile();
    const ledger = moduleRef.get(Ledger);
    expect(await ledger.deposit('acc-2', 1)).toBe(2);
    expect(await ledger.balance('acc-2')).toBe(101);
    expect(moduleRef.get(STORE)).toBe(seeded);
    // The same conflicts as Cosmos DB: version 2 is taken now.
    await expect(seeded.save('acc-2', [{ version: 2, data: new Uint8Array() }])).rejects.toBeInstanceOf(ConcurrencyError);
  });

  it('provides the token directly in a plain unit test', async () => {
    const moduleRef = await Test.createTestingModule({
      providers: [Ledger, { provide: SNAPSHOT_TAIL_STORE, useValue: new InMemoryEventStore() }],
    }).compile();
    expect(await moduleRef.get(Ledger).deposit('acc-5', 1)).toBe(1);
  });
});

describe('a consumer module tested with a jest mock', () => {
  it('overrides SNAPSHOT_TAIL_STORE with a mock and checks the calls', async () => {
    const mock: jest.Mocked<SnapshotTailStore> = {
      save: jest.fn<Store['save']>().mockResolvedValue(undefined),
      load: jest.fn<Store['load']>().mockResolvedValue({ records: [] }),
      loadTail: jest.fn<SnapshotTailStore['loadTail']>().mockResolvedValue({ records: [{ version: 7, data: new Uint8Array() }] }),
    };
    const moduleRef = await Test.createTestingModule({ imports: [LedgerModule] })
      .overrideModule(EventStoreModule)
      .useModule(EventStoreModule.inMemory())
      .overrideProvider(SNAPSHOT_TAIL_STORE)
      .useValue(mock)
      .compile();
    expect(await moduleRef.get(Ledger).deposit('acc-3', 4)).toBe(8);
    expect(mock.save).toHaveBeenCalledWith('acc-3', [expect.objectContaining({ version: 8 })]);
  });

  it('surfaces a conflict from the mocked store to the caller', async () => {
    const mock: jest.Mocked<SnapshotTailStore> = {
      save: jest.fn<Store['save']>().mockRejectedValue(new ConcurrencyError('acc-4', [1])),
      load: jest.fn<Store['load']>(),
      loadTail: jest.fn<SnapshotTailStore['loadTail']>().mockResolvedValue({ records: [] }),
    };
    const moduleRef = await Test.createTestingModule({ imports: [LedgerModule] })
      .overrideModule(EventStoreModule)
      .useModule(EventStoreModule.inMemory())
      .overrideProvider(SNAPSHOT_TAIL_STORE)
      .useValue(mock)
      .compile();
    await expect(moduleRef.get(Ledger).deposit('acc-4', 1)).rejects.toBeInstanceOf(ConcurrencyError);
    expect(mock.save).toHaveBeenCalledTimes(1);
  });
});

// --- the consumer's code, with the recommended global setup ---------------------------------------
class Deposited {
  constructor(readonly amount: number) {}
}

@Aggregate({ type: 'Wallet' })
class Wallet extends AggregateRoot {
  balance = 0;

  @On(Deposited)
  onDeposited(event: Deposited): void {
    this.balance += event.amount;
  }
}

class Deposit extends Command<Wallet> {
  constructor(
    readonly lifecycle: Lifecycle,
    readonly aggregateId: string,
    readonly amount: number,
  ) {
    super();
  }

  emit(): Deposited {
    return new Deposited(this.amount);
  }
}

@Injectable()
class Wallets {
  constructor(@InjectAggregateRepository(Wallet) private readonly wallets: AggregateRepository<Wallet>) {}

  async open(id: string, amount: number): Promise<void> {
    await this.wallets.apply(new Deposit('create', id, amount));
  }

  async deposit(id: string, amount: number): Promise<number> {
    await this.wallets.apply(new Deposit('mutate', id, amount));
    return (await this.wallets.load(id)).balance;
  }
}

// The feature module imports no store: the app's root module has `CosmosModule.forRoot(...)` and the global
// `EventStoreModule.forRoot()`.
@Module({ imports: [EventSourcingModule.forFeature([Wallet])], providers: [Wallets] })
class WalletsModule {}
// -------------------------------------------------------------------------------------------------

describe('a feature module of an app with the global EventStoreModule.forRoot()', () => {
  it('is tested beside EventStoreModule.inMemory() in place of the root module', async () => {
    // overrideModule(EventStoreModule) cannot reach the root's EventStoreModule.forRoot(): Nest matches a
    // dynamic module by the object forRoot returned. So the test composes its own root instead.
    const moduleRef = await Test.createTestingModule({ imports: [EventStoreModule.inMemory(), WalletsModule] }).compile();
    const wallets = moduleRef.get(Wallets);
    await wallets.open('w-1', 5);
    expect(await wallets.deposit('w-1', 7)).toBe(12);
  });
});
