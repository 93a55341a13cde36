/*
 * The durable @nestjs/cqrs bridge: events committed through a repository reach @EventsHandler and @Saga
 * through a change feed subscription with its own checkpoints. An app that stops between the write and the
 * handling loses nothing: the next one delivers the event. A handler that fails is retried.
 */
import { Injectable, type INestApplicationContext } from '@nestjs/common';
import { CommandHandler, CqrsModule, EventsHandler, ofType, Saga, type ICommandHandler, type IEvent, type IEventHandler } from '@nestjs/cqrs';
import { Test } from '@nestjs/testing';
import { map, type Observable } from 'rxjs';
import {
  Aggregate,
  AggregateRoot,
  Command,
  CosmosModule,
  EventSourcingModule,
  EventStoreModule,
  InjectAggregateRepository,
  On,
  AggregateRepository,
  SUBSCRIPTIONS,
  SubscriptionsModule,
  type Lifecycle,
  type Subscriptions,
} from '../../src/index.js';
import { CqrsBridgeModule } from '../../src/cqrs.js';
import { startEmbeddedCosmos, type EmbeddedCosmos } from '../../src/testing.js';

class AccountOpened {
  constructor(readonly owner: string) {}
}
class Unrelated {
  constructor(readonly note: string) {}
}

@Aggregate({ type: 'Account' })
class Account extends AggregateRoot {
  owner = '';
  @On(AccountOpened) opened(event: AccountOpened): void {
    this.owner = event.owner;
  }
  @On(Unrelated) unrelated(): void {}
}

class Open extends Command<Account> {
  readonly lifecycle: Lifecycle = 'create';
  constructor(
    readonly aggregateId: string,
    readonly owner: string,
  ) {
    super();
  }
  emit(): AccountOpened {
    return new AccountOpened(this.owner);
  }
}

class Note extends Command<Account> {
  readonly lifecycle: Lifecycle = 'mutate';
  constructor(readonly aggregateId: string) {
    super();
  }
  emit(): Unrelated {
    return new Unrelated('n');
  }
}

/** What the handlers saw, across app instances. */
const seen: string[] = [];
const welcomed: string[] = [];
let failuresLeft = 0;

@EventsHandler(AccountOpened)
class AccountOpenedHandler implements IEventHandler<AccountOpened> {
  async handle(event: AccountOpened): Promise<void> {
    if (!(event instanceof AccountOpened)) throw new Error('not revived as its class');
    if (failuresLeft > 0) {
      failuresLeft--;
      throw new Error('handler down');
    }
    seen.push(event.owner);
  }
}

class Welcome {
  constructor(readonly owner: string) {}
}

@CommandHandler(Welcome)
class WelcomeHandler implements ICommandHandler<Welcome> {
  async execute(command: Welcome): Promise<void> {
    welcomed.push(command.owner);
  }
}

@Injectable()
class AccountSagas {
  @Saga()
  welcome = (events$: Observable<IEvent>): Observable<Welcome> =>
    events$.pipe(
      ofType(AccountOpened),
      map((e) => new Welcome(e.owner)),
    );
}

@Injectable()
class Accounts {
  constructor(@InjectAggregateRepository(Account) readonly repository: AggregateRepository<Account>) {}
}

let cosmos: EmbeddedCosmos;
beforeAll(async () => {
  cosmos = await startEmbeddedCosmos();
});
afterAll(async () => {
  await cosmos.close();
});
beforeEach(() => {
  seen.length = 0;
  welcomed.length = 0;
  failuresLeft = 0;
});

async function start(databaseId: string, autoStart: boolean): Promise<INestApplicationContext> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      CosmosModule.forRoot({ endpoint: cosmos.endpoint, key: cosmos.key, databaseId }),
      EventStoreModule.forRoot(),
      EventSourcingModule.forFeature([Account]),
      SubscriptionsModule.forRoot({ autoStart, retry: { attempts: 3, initialDelayMs: 1, maxDelayMs: 5 } }),
      CqrsModule.forRoot(),
      CqrsBridgeModule.forRoot({ events: [AccountOpened] }),
    ],
    providers: [Accounts, AccountOpenedHandler, WelcomeHandler, AccountSagas],
  }).compile();
  return moduleRef.createNestApplication({ logger: false }).init();
}

it('delivers an event written by an app that stopped before handling it to the next app, once, with its saga', async () => {
  // The first app writes, and stops before its subscription reads anything: nothing is checkpointed.
  const first = await start('cqrs-crash', false);
  await first.get(Accounts).repository.apply(new Open('acct-1', 'ann'));
  await first.get(Accounts).repository.apply(new Note('acct-1'));
  await first.close();
  expect(seen).toEqual([]);

  const second = await start('cqrs-crash', true);
  try {
    await second.get<Subscriptions>(SUBSCRIPTIONS).waitForCatchUp('cqrs', { timeoutMs: 20_000 });
    expect(seen).toEqual(['ann']);
    expect(welcomed).toEqual(['ann']);
  } finally {
    await second.close();
  }

  // Checkpointed: a third app does not deliver it again.
  const third = await start('cqrs-crash', true);
  try {
    await third.get(Accounts).repository.apply(new Open('acct-2', 'bob'));
    await third.get<Subscriptions>(SUBSCRIPTIONS).waitForCatchUp('cqrs', { timeoutMs: 20_000 });
    expect(seen).toEqual(['ann', 'bob']);
  } finally {
    await third.close();
  }
});

it('retries a handler that fails, delivering the event once it succeeds', async () => {
  failuresLeft = 2;
  const app = await start('cqrs-retry', true);
  try {
    await app.get(Accounts).repository.apply(new Open('acct-r', 'cy'));
    await app.get<Subscriptions>(SUBSCRIPTIONS).waitForCatchUp('cqrs', { timeoutMs: 20_000 });
    expect(seen).toEqual(['cy']);
    expect(failuresLeft).toBe(0);
  } finally {
    await app.close();
  }
});
