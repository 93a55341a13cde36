/*
 * A consumer app of the packed library, compiled once as ESM and once as CommonJS by `smoke.sh`, outside
 * this repository: an aggregate, a command, a query on a secondary index and a typed subscriber catching
 * up, against the embedded server from `nest-cosmos-eventstore/testing`; then the same feature module
 * unit-tested in memory (no server); then an HTTP app configured from environment variables through
 * `nest-cosmos-eventstore/config`, whose @nestjs/terminus /health turns 503 once the server is closed, and
 * whose start fails naming a bad variable; that app also runs an @nestjs/cqrs `@EventsHandler` through the
 * durable bridge of `nest-cosmos-eventstore/cqrs`. Exits 0 when every step holds.
 */
import 'reflect-metadata';
import { Controller, Get, Injectable, Module, type DynamicModule } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { CqrsModule, EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { NestFactory } from '@nestjs/core';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import {
  CosmosHealthIndicator,
  SubscriptionsHealthIndicator,
  Aggregate,
  AggregateRoot,
  Command,
  CosmosModule,
  EventSourcingModule,
  EventStoreModule,
  Gsi,
  JsonEventSerializer,
  InjectAggregateRepository,
  On,
  OnStoredEvent,
  AggregateRepository,
  Subscriber,
  SUBSCRIPTIONS,
  SubscriptionsModule,
  type SubscribedEvent,
  type Subscriptions,
} from 'nest-cosmos-eventstore';
import { cosmosConfig, eventStoreConfig, subscriptionsConfig, validateLibraryEnv } from 'nest-cosmos-eventstore/config';
import { CqrsBridgeModule } from 'nest-cosmos-eventstore/cqrs';
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

  @OnStoredEvent({ events: [Opened], aggregateIdPrefix: 'Account/' })
  onOpened(event: Opened, { streamId: aggregateId }: SubscribedEvent): void {
    if (event instanceof Opened && aggregateId.startsWith('Account/')) this.owners.push(event.owner);
  }
}

@EventsHandler(Opened)
class OpenedHandler implements IEventHandler<Opened> {
  static readonly owners: string[] = [];

  handle(event: Opened): void {
    if (event instanceof Opened) OpenedHandler.owners.push(event.owner);
  }
}

@Injectable()
class Accounts {
  constructor(@InjectAggregateRepository(Account) readonly repository: AggregateRepository<Account>) {}
}

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`consumer scenario: ${what}`);
}

@Module({
  imports: [EventSourcingModule.forFeature([Account]), SubscriptionsModule.forFeature([OpenedAccounts])],
  providers: [Accounts],
})
class AccountsModule {}

async function scenario(infrastructure: Array<DynamicModule | Promise<DynamicModule>>, where: string, cqrs = false): Promise<void> {
  @Module({
    imports: [...infrastructure, AccountsModule, ...(cqrs ? [CqrsModule.forRoot(), CqrsBridgeModule.forRoot({ events: [Opened] })] : [])],
    providers: cqrs ? [OpenedHandler] : [],
  })
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
    if (cqrs) {
      await app.get<Subscriptions>(SUBSCRIPTIONS).waitForCatchUp('cqrs', { timeoutMs: 20_000 });
      check(OpenedHandler.owners.join() === 'ann', `${where}: the @EventsHandler got the event through the cqrs bridge`);
    }
    console.log(`consumer scenario passed: ${where}`);
  } finally {
    await app.close();
  }
}

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly cosmos: CosmosHealthIndicator,
    private readonly subscriptions: SubscriptionsHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.cosmos.isHealthy('cosmos', { timeoutMs: 2_000 }), () => this.subscriptions.isHealthy()]);
  }
}

@Module({ imports: [TerminusModule.forRoot({ logger: false })], controllers: [HealthController] })
class HealthModule {}

/** The infrastructure from the environment, one line per module. */
function fromEnvironment(): Array<DynamicModule | Promise<DynamicModule>> {
  return [
    ConfigModule.forRoot({ ignoreEnvFile: true, validate: validateLibraryEnv }),
    CosmosModule.forRootAsync(cosmosConfig.asProvider()),
    EventStoreModule.forRootAsync(eventStoreConfig.asProvider()),
    SubscriptionsModule.forRootAsync(subscriptionsConfig.asProvider()),
  ];
}

async function configuredFromEnvironment(): Promise<void> {
  const cosmos = await startEmbeddedCosmos();
  let open = true;
  Object.assign(process.env, { COSMOS_ENDPOINT: cosmos.endpoint, COSMOS_KEY: cosmos.key, COSMOS_DATABASE: 'from-env', EVENT_TTL_SECONDS: '0' });
  try {
    // The same scenario, every setting from the environment.
    await scenario(fromEnvironment(), 'configured from the environment, with the cqrs bridge', true);

    @Module({ imports: [...fromEnvironment(), AccountsModule, HealthModule] })
    class HttpAppModule {}
    const app = await NestFactory.create(HttpAppModule, { logger: false });
    await app.listen(0, '127.0.0.1');
    try {
      const url = `${await app.getUrl()}/health`;
      const up = await fetch(url);
      const upBody = (await up.json()) as { status?: string; info?: Record<string, { status?: string }> };
      check(up.status === 200 && upBody.info?.cosmos?.status === 'up', `terminus /health answers 200 up (got ${up.status})`);
      check(upBody.info?.subscriptions?.status === 'up', 'terminus /health reports the subscriptions up');
      await cosmos.close();
      open = false;
      const down = await fetch(url);
      const downBody = (await down.json()) as { status?: string; error?: Record<string, { status?: string }> };
      check(down.status === 503 && downBody.error?.cosmos?.status === 'down', `terminus /health answers 503 once the server is closed (got ${down.status})`);
      console.log('consumer scenario passed: terminus health');
    } finally {
      await app.close();
    }

    process.env.COSMOS_DATABASE = 'a/b';
    const failure = await NestFactory.createApplicationContext(
      (() => {
        @Module({ imports: fromEnvironment() })
        class BadEnvModule {}
        return BadEnvModule;
      })(),
      { logger: false, abortOnError: false },
    ).then(
      async (context) => {
        await context.close();
        return undefined;
      },
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    check(failure !== undefined && /COSMOS_DATABASE must be a Cosmos DB id/.test(failure) && !failure.includes('\n'), `a bad variable fails the start naming it in one line (got ${failure})`);
    console.log('consumer scenario passed: a bad variable fails the start');
  } finally {
    if (open) await cosmos.close();
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
  await configuredFromEnvironment();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
