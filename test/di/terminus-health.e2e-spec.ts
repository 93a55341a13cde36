/*
 * The health indicators as a Nest app uses them with @nestjs/terminus: CosmosModule and SubscriptionsModule
 * provide them (nothing to list as a provider), HealthCheckService runs them, and the answer turns 503 when
 * the Cosmos DB server is closed or a consumer group stopped on a failure; a lagging group stays up.
 */
import { Controller, Get, Module, type INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import {
  CosmosHealthIndicator,
  CosmosModule,
  EventStoreModule,
  OnStoredEvent,
  STORE,
  Subscriber,
  SUBSCRIPTIONS,
  SubscriptionsHealthIndicator,
  SubscriptionsModule,
  type Store,
  type SubscribedEvent,
  type Subscriptions,
} from '../../src/index.js';
import { startEmbeddedCosmos, type EmbeddedCosmos } from '../../src/testing.js';

@Controller('health')
class CosmosHealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly cosmos: CosmosHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.cosmos.isHealthy('cosmos', { timeoutMs: 2_000 })]);
  }
}

@Controller('health')
class SubscriptionsHealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly subscriptions: SubscriptionsHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.subscriptions.isHealthy()]);
  }
}

const apps: INestApplication[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

async function start(imports: unknown[], controller: new (...args: never[]) => unknown): Promise<INestApplication> {
  @Module({ imports: [TerminusModule.forRoot({ logger: false })], controllers: [controller] })
  class HealthModule {}
  const moduleRef = await Test.createTestingModule({ imports: [...(imports as never[]), HealthModule] }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  apps.push(app);
  return app.init();
}

describe('CosmosHealthIndicator through terminus', () => {
  let cosmos: EmbeddedCosmos;
  beforeAll(async () => {
    cosmos = await startEmbeddedCosmos();
  });
  afterAll(async () => {
    await cosmos?.close().catch(() => undefined);
  });

  it('is provided by CosmosModule, answers 200 up while the server answers, and 503 down once it is closed', async () => {
    const app = await start(
      [CosmosModule.forRoot({ endpoint: cosmos.endpoint, key: cosmos.key, databaseId: 'terminus' })],
      CosmosHealthController,
    );
    const up = await request(app.getHttpServer()).get('/health').expect(200);
    expect(up.body).toEqual({ status: 'ok', info: { cosmos: { status: 'up' } }, error: {}, details: { cosmos: { status: 'up' } } });

    await cosmos.close();
    const down = await request(app.getHttpServer()).get('/health').expect(503);
    expect(down.body).toEqual({
      status: 'error',
      info: {},
      error: { cosmos: { status: 'down', message: expect.stringMatching(/unreachable|did not answer/) } },
      details: { cosmos: { status: 'down', message: expect.any(String) } },
    });
  });
});

describe('CosmosHealthIndicator probes', () => {
  let cosmos: EmbeddedCosmos;
  beforeAll(async () => {
    cosmos = await startEmbeddedCosmos();
  });
  afterAll(async () => {
    await cosmos.close();
  });

  it('reads no container metadata: one point read per container', async () => {
    const app = await start(
      [CosmosModule.forRoot({ endpoint: cosmos.endpoint, key: cosmos.key, databaseId: 'probes' })],
      CosmosHealthController,
    );
    const indicator = app.get(CosmosHealthIndicator);
    const containers = [(indicator as unknown as { events: object }).events, (indicator as unknown as { aggregates: object }).aggregates];
    for (const container of containers) {
      Object.assign(container, { read: () => Promise.reject(new Error('a metadata read per probe')) });
    }
    await expect(indicator.isHealthy()).resolves.toEqual({ cosmos: { status: 'up' } });
  });
});

const FAIL = new Set<string>();

@Subscriber({ name: 'strict', onFailure: 'stop' })
class Strict {
  @OnStoredEvent()
  handle({ aggregateId, version }: SubscribedEvent): void {
    if (FAIL.has(`${aggregateId}@${version}`)) throw new Error(`cannot handle ${aggregateId}@${version}`);
  }
}

describe('SubscriptionsHealthIndicator through terminus', () => {
  it('is provided by SubscriptionsModule: up with the lag while behind, down with the reason once a group stopped', async () => {
    FAIL.clear();
    const app = await start(
      [
        EventStoreModule.inMemory(),
        SubscriptionsModule.inMemory({ retry: { attempts: 1, initialDelayMs: 1, maxDelayMs: 1 }, autoStart: false }),
        SubscriptionsModule.forFeature([Strict]),
      ],
      SubscriptionsHealthController,
    );
    const store = app.get<Store>(STORE);
    await store.save('a', [{ version: 1, data: new Uint8Array([1]) }]);
    // Not started: behind by one event, which is lag, not an outage.
    const lagging = await request(app.getHttpServer()).get('/health').expect(200);
    expect(lagging.body.info.subscriptions).toEqual({
      status: 'up',
      subscribers: { strict: expect.objectContaining({ estimatedPending: 1 }) },
    });

    FAIL.add('a@2');
    await store.save('a', [{ version: 2, data: new Uint8Array([2]) }]);
    const subscriptions = app.get<Subscriptions>(SUBSCRIPTIONS);
    await subscriptions.start();
    await expect(subscriptions.waitForCatchUp('strict', { timeoutMs: 2_000 })).rejects.toThrow(/stopped/);
    const down = await request(app.getHttpServer()).get('/health').expect(503);
    expect(down.body.error.subscriptions).toEqual({
      status: 'down',
      message: 'stopped on a failure: strict',
      subscribers: { strict: expect.objectContaining({ state: 'stopped', reason: expect.stringContaining('cannot handle a@2') }) },
    });
  });
});
