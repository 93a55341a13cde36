/*
 * A consumer app of the packed library, compiled once as ESM and once as CommonJS by `smoke.sh`, outside
 * this repository: an aggregate, a command, a query on a secondary index and a subscriber catching up,
 * against the embedded server from `nest-cosmos-eventstore/testing`. Exits 0 when every step holds.
 */
import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  Aggregate,
  AggregateRoot,
  Command,
  CosmosModule,
  EventSourcingModule,
  EventStoreModule,
  Gsi,
  InjectRepository,
  On,
  OnEvent,
  Repository,
  Subscriber,
  SUBSCRIPTIONS,
  SubscriptionsModule,
  type SubscribedEvent,
  type Subscriptions,
} from 'nest-cosmos-eventstore';
import { startEmbeddedCosmos } from 'nest-cosmos-eventstore/testing';

class Opened {
  constructor(readonly owner: string) {}
}

@Aggregate({ type: 'Account' })
class Account extends AggregateRoot {
  @Gsi(1, 'pk') owner = '';

  @On(Opened)
  onOpened(event: Opened): void {
    this.owner = event.owner;
  }
}

class Open extends Command<Account> {
  readonly lifecycle = 'create';

  constructor(
    readonly aggregateId: string,
    readonly owner: string,
  ) {
    super();
  }

  emit(): Opened {
    return new Opened(this.owner);
  }
}

@Injectable()
@Subscriber({ name: 'opened-accounts', startFrom: 'beginning' })
class OpenedAccounts {
  readonly seen: string[] = [];

  @OnEvent({ aggregateIdPrefix: 'Account/' })
  onEvent({ aggregateId }: SubscribedEvent): void {
    this.seen.push(aggregateId);
  }
}

@Injectable()
class Accounts {
  constructor(@InjectRepository(Account) readonly repository: Repository<Account>) {}
}

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`consumer scenario: ${what}`);
}

async function main(): Promise<void> {
  const cosmos = await startEmbeddedCosmos();
  @Module({
    imports: [
      CosmosModule.forRoot({ endpoint: cosmos.endpoint, key: cosmos.key, databaseId: 'consumer' }),
      EventStoreModule.forRoot(),
      EventSourcingModule.forFeature([Account]),
      SubscriptionsModule.forRoot(),
      SubscriptionsModule.forFeature([OpenedAccounts]),
    ],
    providers: [Accounts],
  })
  class AppModule {}

  const app = await NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
  try {
    const { repository } = app.get(Accounts);
    check((await repository.apply(new Open('a-1', 'ann'))) === 1, 'the command is stored as version 1');
    check((await repository.get('a-1')).owner === 'ann', 'the materialized state is read back');
    const page = await repository.query({ index: 1, pk: 'ann' });
    check(page.items.length === 1 && page.items[0]?.id === 'a-1', 'the secondary index finds the account');
    const subscriptions = app.get<Subscriptions>(SUBSCRIPTIONS);
    await subscriptions.waitForCatchUp('opened-accounts', { timeoutMs: 20_000 });
    check(app.get(OpenedAccounts).seen.includes('Account/a-1'), 'the subscriber saw the event');
    console.log('consumer scenario passed');
  } finally {
    await app.close();
    await cosmos.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
