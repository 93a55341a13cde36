/*
 * The service on a configured account (COSMOS_ENDPOINT + COSMOS_KEY, custom database and container ids),
 * played here by an embedded server the test owns, so it can also take the account away: /health then
 * answers 503 and the store endpoints 503, as JSON, without hanging.
 */
import { randomUUID } from 'node:crypto';
import { CosmosClient } from '@azure/cosmos';
import request from 'supertest';
import { SNAPSHOT_TAIL_STORE, type SnapshotTailStore } from '../../src/index.js';
import { startEmbeddedCosmos, type EmbeddedCosmos } from '../../src/testing.js';
import { CapturingLogger, startService, type ServiceUnderTest } from '../support/app.js';

const logger = new CapturingLogger();
const databaseId = `configured-${randomUUID()}`;
let cosmos: EmbeddedCosmos;
let cosmosOpen = true;
let service: ServiceUnderTest;
let http: ServiceUnderTest['http'];

beforeAll(async () => {
  cosmos = await startEmbeddedCosmos();
  service = await startService(
    {
      COSMOS_ENDPOINT: cosmos.endpoint,
      COSMOS_KEY: cosmos.key,
      COSMOS_DATABASE: databaseId,
      COSMOS_EVENTS_CONTAINER: 'ev',
      COSMOS_AGGREGATES_CONTAINER: 'agg',
      COSMOS_LEASES_CONTAINER: 'lz',
    },
    logger,
  );
  http = service.http;
});

afterAll(async () => {
  await service?.close();
  if (cosmosOpen) await cosmos?.close();
});

it('refuses the raw event API’s writes (403) on a configured account without ADMIN_TOKEN, and writes nothing', async () => {
  const res = await request(http)
    .post('/aggregates/acct-raw/events')
    .send({ records: [{ version: 1, data: '' }] })
    .expect(403);
  expect(res.body).toMatchObject({ statusCode: 403, error: 'Forbidden', message: expect.stringMatching(/set ADMIN_TOKEN/) });
  expect((await request(http).get('/aggregates/acct-raw/events').expect(200)).body).toEqual({ records: [] });
});

it('uses the configured account, database and containers, and logs neither key nor "in memory"', async () => {
  // Through the store itself: the raw API's writes need ADMIN_TOKEN here.
  await service.app.get<SnapshotTailStore>(SNAPSHOT_TAIL_STORE).save('acct-1', [{ version: 1, data: Buffer.from('hello') }]);

  const client = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key });
  try {
    const { resources } = await client.database(databaseId).containers.readAll().fetchAll();
    expect(resources.map((c) => c.id).sort()).toEqual(['agg', 'ev', 'lz']);
    const { resources: docs } = await client
      .database(databaseId)
      .container('ev')
      .items.query({ query: 'SELECT c.a, c.v, c.d FROM c' })
      .fetchAll();
    expect(docs).toEqual([{ a: 'acct-1', v: 1, d: Buffer.from('hello').toString('base64') }]);
  } finally {
    client.dispose();
  }

  const log = logger.text;
  expect(log).toContain('with an account key');
  expect(log).not.toContain(cosmos.key);
  expect(log).not.toMatch(/in memory only/);
});

it('answers /health 200 while the account answers', async () => {
  expect((await request(http).get('/health').expect(200)).body.status).toBe('ok');
});

it('refuses the admin endpoints (403) on a configured account without ADMIN_TOKEN', async () => {
  const res = await request(http).post('/admin/projections/order-stats/rebuild').expect(403);
  expect(res.body.message).toMatch(/set ADMIN_TOKEN/);
  expect(logger.text).not.toMatch(/order-stats: rebuilding/);
});

describe('when the account goes away', () => {
  beforeAll(async () => {
    await cosmos.close();
    cosmosOpen = false;
  });

  it('/health answers 503 { status: error } with a short reason, without hanging', async () => {
    const res = await request(http).get('/health').expect(503);
    const error = {
      cosmos: { status: 'down', message: expect.stringMatching(/unreachable|did not answer/) },
      // The subscriptions' lag is read from the same account.
      subscriptions: { status: 'down', subscribers: {}, message: expect.any(String) },
    };
    // @nestjs/terminus's answer: details repeats info and error together.
    expect(res.body).toEqual({ status: 'error', info: {}, error, details: error });
  });

  it('/health/live still answers 200: a restart would not bring the account back', async () => {
    expect((await request(http).get('/health/live').expect(200)).body).toEqual({ status: 'ok' });
  });

  it('the store endpoints answer 503 as JSON, keeping the detail in the log', async () => {
    const res = await request(http).get('/aggregates/acct-1/events').expect(503).expect('content-type', /json/);
    expect(res.body).toEqual({
      statusCode: 503,
      error: 'Service Unavailable',
      message: 'Cosmos DB is unavailable; retry later',
    });
    expect(logger.text).toMatch(/load "acct-1" failed/);
  });
});
