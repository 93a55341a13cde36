/*
 * How a consumer unit-tests a subscriber (a projection) without Cosmos DB: the in-memory event store and
 * the in-memory subscriptions, the same @Subscriber class the app registers, events committed through the
 * aggregate's repository, then `waitForCatchUp` before looking at the read model. Milliseconds, no server.
 */
import { Injectable, Module } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import {
  Aggregate,
  AggregateRoot,
  Command,
  EventSourcingModule,
  EventStoreModule,
  getAggregateRepositoryToken,
  InjectAggregateRepository,
  JsonEventSerializer,
  On,
  OnStoredEvent,
  AggregateRepository,
  Subscriber,
  SUBSCRIPTIONS,
  SubscriptionsModule,
  type SubscribedEvent,
  type Subscriptions,
} from '../../src/index.js';

// --- the consumer's code -------------------------------------------------------------------------
class Deposited {
  constructor(readonly amount: number) {}
}
class Withdrawn {
  constructor(readonly amount: number) {}
}

@Aggregate({ type: 'Account', snapshotEvery: 2 })
class Account extends AggregateRoot {
  balance = 0;
  @On(Deposited) onDeposited(e: Deposited) {
    this.balance += e.amount;
  }
  @On(Withdrawn) onWithdrawn(e: Withdrawn) {
    this.balance -= e.amount;
  }
}

abstract class AccountCommand extends Command<Account> {
  constructor(
    readonly aggregateId: string,
    readonly amount: number,
  ) {
    super();
  }
}
class Open extends AccountCommand {
  readonly lifecycle = 'create';
  emit() {
    return new Deposited(this.amount);
  }
}
class Deposit extends AccountCommand {
  readonly lifecycle = 'mutate';
  emit() {
    return new Deposited(this.amount);
  }
}
class Withdraw extends AccountCommand {
  readonly lifecycle = 'mutate';
  emit() {
    return new Withdrawn(this.amount);
  }
}

/** The read model: total money held, per account (in the test, a Map; in the app, a container). */
@Injectable()
class Balances {
  readonly byAccount = new Map<string, { balance: number; version: number }>();
}

@Subscriber({ name: 'balances', serializer: new JsonEventSerializer() })
class BalancesProjection {
  constructor(private readonly balances: Balances) {}

  @OnStoredEvent({ events: [Deposited, Withdrawn], aggregateIdPrefix: 'Account/' })
  apply(event: Deposited | Withdrawn, { streamId: aggregateId, version }: SubscribedEvent): void {
    const row = this.balances.byAccount.get(aggregateId) ?? { balance: 0, version: 0 };
    if (version <= row.version) return; // delivered again: at least once
    const delta = event instanceof Deposited ? event.amount : -event.amount;
    this.balances.byAccount.set(aggregateId, { balance: row.balance + delta, version });
  }
}

@Injectable()
class Bank {
  constructor(@InjectAggregateRepository(Account) readonly accounts: AggregateRepository<Account>) {}
}

@Module({
  imports: [EventSourcingModule.forFeature([Account]), SubscriptionsModule.forFeature([BalancesProjection], { providers: [Balances] })],
  providers: [Bank],
  exports: [Bank],
})
class BankModule {}
// -------------------------------------------------------------------------------------------------

describe('a consumer unit-tests its subscriber in memory', () => {
  let moduleRef: TestingModule;

  beforeEach(async () => {
    // In the app: EventStoreModule.forRoot() and SubscriptionsModule.forRoot(); here their in-memory twins.
    moduleRef = await Test.createTestingModule({
      imports: [EventStoreModule.inMemory(), SubscriptionsModule.inMemory({ retry: { attempts: 1 } }), BankModule],
    }).compile();
    await moduleRef.init(); // starts the subscribers
  });

  afterEach(() => moduleRef.close());

  it('the projection sees every committed event, typed, once caught up', async () => {
    const accounts = moduleRef.get<AggregateRepository<Account>>(getAggregateRepositoryToken(Account));
    // snapshotEvery 2: the snapshot lives in the aggregate's tip, so the stream is 1 Deposited, 2 Withdrawn,
    // 3 Deposited: every version is an event (tips never reach the projection).
    await accounts.apply(new Open('acc-1', 100));
    await accounts.apply(new Withdraw('acc-1', 30));
    await accounts.apply(new Deposit('acc-1', 5));
    await accounts.apply(new Open('acc-2', 7));

    const subscriptions = moduleRef.get<Subscriptions>(SUBSCRIPTIONS);
    await subscriptions.waitForCatchUp('balances', { timeoutMs: 1_000 });

    const balances = moduleRef.get(Balances).byAccount;
    expect(balances.get('Account/acc-1')).toEqual({ balance: 75, version: 3 });
    expect(balances.get('Account/acc-2')).toEqual({ balance: 7, version: 1 });
    expect((await subscriptions.lag('balances'))[0]).toMatchObject({ state: 'running', estimatedPending: 0 });
    expect(await subscriptions.deadLetters('balances')).toEqual([]);
  });

  it('a rebuild replays every event into the cleared read model', async () => {
    const accounts = moduleRef.get(Bank).accounts;
    await accounts.apply(new Open('acc-3', 10));
    const subscriptions = moduleRef.get<Subscriptions>(SUBSCRIPTIONS);
    await subscriptions.waitForCatchUp('balances');
    moduleRef.get(Balances).byAccount.clear();
    await subscriptions.rebuild('balances');
    await subscriptions.waitForCatchUp('balances');
    expect(moduleRef.get(Balances).byAccount.get('Account/acc-3')).toEqual({ balance: 10, version: 1 });
  });
});
