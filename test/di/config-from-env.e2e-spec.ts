/*
 * The library's configuration from environment variables (`nest-cosmos-eventstore/config`): an app wires every
 * module with one line each, `X.forRootAsync(xConfig.asProvider())`, and a bad variable fails the start with
 * one line naming it.
 */
import { ConfigModule } from '@nestjs/config';
import { Test } from '@nestjs/testing';
import {
  CosmosModule,
  EventStoreModule,
  LEASES_CONTAINER,
  STORE,
  SubscriptionsModule,
  type Store,
} from '../../src/index.js';
import { cosmosConfig, eventStoreConfig, readLibraryEnv, subscriptionsConfig, validateLibraryEnv } from '../../src/config.js';
import { startEmbeddedCosmos, type EmbeddedCosmos } from '../../src/testing.js';
import type { Container } from '@azure/cosmos';

const VARIABLES = ['COSMOS_ENDPOINT', 'COSMOS_KEY', 'COSMOS_DATABASE', 'COSMOS_LEASES_CONTAINER', 'EVENT_TTL_SECONDS', 'SUBSCRIPTIONS_LEASE_SECONDS'];
const saved = Object.fromEntries(VARIABLES.map((v) => [v, process.env[v]]));
afterEach(() => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

let cosmos: EmbeddedCosmos;
beforeAll(async () => {
  cosmos = await startEmbeddedCosmos();
});
afterAll(async () => {
  await cosmos.close();
});

function compile() {
  return Test.createTestingModule({
    imports: [
      ConfigModule.forRoot({ ignoreEnvFile: true, validate: validateLibraryEnv }),
      CosmosModule.forRootAsync(cosmosConfig.asProvider()),
      EventStoreModule.forRootAsync(eventStoreConfig.asProvider()),
      SubscriptionsModule.forRootAsync(subscriptionsConfig.asProvider()),
    ],
  }).compile();
}

it('configures Cosmos DB, the event store and the subscriptions from the environment, one line each', async () => {
  Object.assign(process.env, {
    COSMOS_ENDPOINT: cosmos.endpoint,
    COSMOS_KEY: cosmos.key,
    COSMOS_DATABASE: 'from-env',
    COSMOS_LEASES_CONTAINER: 'env-leases',
    EVENT_TTL_SECONDS: '3600',
  });
  const moduleRef = await compile();
  const app = await moduleRef.createNestApplication({ logger: false }).init();
  try {
    const store = app.get<Store>(STORE);
    await store.save('env-1', [{ version: 1, data: new Uint8Array([1]) }]);
    expect((await store.load('env-1')).records).toHaveLength(1);
    const leases = app.get<Container>(LEASES_CONTAINER);
    expect([leases.database.id, leases.id]).toEqual(['from-env', 'env-leases']);
    // EVENT_TTL_SECONDS reached the store: the stored event carries it.
    const { resources } = await leases.database.container('events').items.query('SELECT * FROM c').fetchAll();
    expect(resources.map((d: { ttl?: number }) => d.ttl)).toEqual([3600]);
  } finally {
    await app.close();
  }
});

it.each([
  ['COSMOS_DATABASE', { COSMOS_DATABASE: 'a/b' }, /COSMOS_DATABASE must be a Cosmos DB id/],
  ['EVENT_TTL_SECONDS', { EVENT_TTL_SECONDS: 'a day' }, /EVENT_TTL_SECONDS must be an integer from 0 to 2147483647, got "a day"/],
  ['SUBSCRIPTIONS_LEASE_SECONDS', { SUBSCRIPTIONS_LEASE_SECONDS: '1' }, /SUBSCRIPTIONS_LEASE_SECONDS must be an integer from 3 to 3600/],
  ['COSMOS_ENDPOINT (missing)', { COSMOS_ENDPOINT: undefined }, /COSMOS_ENDPOINT is required/],
])('a bad %s fails the start with one line naming it', async (_name, env, message) => {
  Object.assign(process.env, { COSMOS_ENDPOINT: cosmos.endpoint, COSMOS_KEY: cosmos.key });
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  const failure = await compile().then(
    () => undefined,
    (err: unknown) => err as Error,
  );
  expect(failure?.message).toMatch(message);
  expect(failure?.message).not.toContain('\n');
  expect(failure?.message).not.toContain(cosmos.key);
});

it('reads every module at once with the defaults, and embeds a server without COSMOS_ENDPOINT only when asked', () => {
  expect(readLibraryEnv({ COSMOS_ENDPOINT: 'https://acct.documents.azure.com:443/' })).toEqual({
    cosmos: {
      endpoint: 'https://acct.documents.azure.com:443/',
      databaseId: 'eventstore',
      eventsContainerId: 'events',
      aggregatesContainerId: 'aggregates',
      startupTimeoutMs: 15_000,
    },
    eventStore: {},
    subscriptions: { leasesContainerId: 'leases' },
  });
  expect(() => readLibraryEnv({})).toThrow(/^invalid environment: COSMOS_ENDPOINT is required/);
  expect(readLibraryEnv({}, { embeddedWhenNoEndpoint: true }).cosmos).toMatchObject({ embeddedWhenNoEndpoint: true });
});
