/*
 * A consumer app of the packed library, compiled once as ESM and once as CommonJS by `smoke.sh`, outside
 * this repository: an aggregate, a command, a query on a secondary index and a typed subscriber catching
 * up, against the embedded server from `nest-cosmos-eventstore/testing`; then the same feature module
 * unit-tested in memory (no server). Exits 0 when every step holds.
 */
import 'reflect-metadata';
import { Injectable, Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  Aggregate,
  AggregateRoot,
  Command,
  CosmosModule,
  EventSourcingModule,
  EventStoreModule,
  Gsi,
  JsonEventSerializer,
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
@Subscriber({ name: 'opened-accounts', startFrom: 'beginning', serializer: new JsonEventSerializer() })
class OpenedAccounts {
  readonly owners: string[] = [];

  @OnEvent({ events: [Opened], aggregateIdPrefix: 'Account/' })
  onOpened(event: Opened, { streamId: aggregateId }: SubscribedEvent): void {
    if (event instanceof Opened && aggregateId.startsWith('Account/')) this.owners.push(event.owner);
  }
}

@Injectable()
class Accounts {
  constructor(@InjectRepository(Account) readonly repository: Repository<Account>) {}
}

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`consumer scenario: ${what}`);
}

@Module({
  imports: [EventSourcingModule.forFeature([Account]), SubscriptionsModule.forFeature([OpenedAccounts])],
  providers: [Accounts],
})
class AccountsModule {}

async function scenario(infrastructure: Array<DynamicModule>, where: string): Promise<void> {
  @Module({ imports: [...infrastructure, AccountsModule] })
  class AppModule {}

  const app = await NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
  try {
    const { repository } = app.get(Accounts);
    check((await repository.apply(new Open('a-1', 'ann'))) === 1, `${where}: the command is stored as version 1`);
    check((await repository.get('a-1')).owner === 'ann', `${where}: the materialized state is read back`);
    const page = await repository.query({ index: 1, pk: 'ann' });
    check(page.items.length === 1 && page.items[0]?.id === 'a-1', `${where}: the secondary index finds the account`);
    await app.get<Subscriptions>(SUBSCRIPTIONS).waitForCatchUp('opened-accounts', { timeoutMs: 20_000 });
    check(app.get(OpenedAccounts).owners.join() === 'ann', `${where}: the subscriber saw the typed event once`);
    console.log(`consumer scenario passed: ${where}`);
  } finally {
    await app.close();
  }
}

async function main(): Promise<void> {
  const cosmos = await startEmbeddedCosmos();
  try {
    await scenario(
      [
        CosmosModule.forRoot({ endpoint: cosmos.endpoint, key: cosmos.key, databaseId: 'consumer' }),
        EventStoreModule.forRoot(),
        SubscriptionsModule.forRoot(),
      ],
      'embedded server',
    );
  } finally {
    await cosmos.close();
  }
  await scenario([EventStoreModule.inMemory(), SubscriptionsModule.inMemory()], 'in memory');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
