/*
 * The service's configuration from environment variables: defaults, every invalid variable named in the
 * start-up error, and secrets never quoted in it.
 */
import { ConfigModule } from '@nestjs/config';
import { appConfig } from '../../example/src/config/app.config.js';
import { cosmosConfig } from '../../example/src/config/cosmos.config.js';
import { configLoaders, loadServiceConfig, validateEnv } from '../../example/src/config/env.validation.js';
import { EnvValidationError, eventStoreConfig, type Env } from '../../src/config.js';

const ENDPOINT = 'https://my-account.documents.azure.com:443/';
// Shaped like an account key (64 random bytes in base64), made up for this test.
const KEY = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37 + 11) % 256)).toString('base64');
const ADMIN_TOKEN = 'made-up-admin-token-for-this-test-0123456789';

/** The error `loadServiceConfig(env)` throws; fails the test when it does not throw. */
function errorFor(env: Env): EnvValidationError {
  try {
    loadServiceConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(EnvValidationError);
    return err as EnvValidationError;
  }
  throw new Error(`expected ${JSON.stringify(Object.keys(env))} to be refused`);
}

describe('defaults', () => {
  it('an empty environment: embedded server, database eventstore, containers events/aggregates/leases, port 3000, no TTL', () => {
    expect(loadServiceConfig({})).toEqual({
      app: { port: 3000, shutdownDrainSeconds: 8 },
      cosmos: {
        databaseId: 'eventstore',
        eventsContainerId: 'events',
        aggregatesContainerId: 'aggregates',
        startupTimeoutMs: 15_000,
        embeddedWhenNoEndpoint: true,
      },
      eventStore: {},
      subscriptions: { leasesContainerId: 'leases' },
    });
  });

  it('an endpoint without a key: DefaultAzureCredential (no key in the settings)', () => {
    const { cosmos } = loadServiceConfig({ COSMOS_ENDPOINT: ENDPOINT });
    expect(cosmos.endpoint).toBe(ENDPOINT);
    expect(cosmos).not.toHaveProperty('key');
  });
});

describe('valid values', () => {
  it('reads every variable', () => {
    expect(
      loadServiceConfig({
        COSMOS_ENDPOINT: ENDPOINT,
        COSMOS_KEY: KEY,
        COSMOS_DATABASE: 'shop',
        COSMOS_EVENTS_CONTAINER: 'shop-events',
        COSMOS_AGGREGATES_CONTAINER: 'shop-aggregates',
        COSMOS_STARTUP_TIMEOUT_SECONDS: '30',
        EVENT_TTL_SECONDS: '86400',
        PORT: '8080',
        SHUTDOWN_DRAIN_SECONDS: '20',
        COSMOS_LEASES_CONTAINER: 'shop-leases',
        SUBSCRIPTIONS_INSTANCE_ID: 'pod-7',
        SUBSCRIPTIONS_LEASE_SECONDS: '10',
        ADMIN_TOKEN: ADMIN_TOKEN,
      }),
    ).toEqual({
      app: { port: 8080, adminToken: ADMIN_TOKEN, shutdownDrainSeconds: 20 },
      cosmos: {
        endpoint: ENDPOINT,
        key: KEY,
        databaseId: 'shop',
        eventsContainerId: 'shop-events',
        aggregatesContainerId: 'shop-aggregates',
        startupTimeoutMs: 30_000,
        embeddedWhenNoEndpoint: true,
      },
      eventStore: { eventTtlSeconds: 86400 },
      subscriptions: { leasesContainerId: 'shop-leases', instanceId: 'pod-7', leaseDurationMs: 10_000 },
    });
  });

  it('accepts a plain-HTTP COSMOS_ENDPOINT with COSMOS_KEY (an emulator), and refuses it without, naming COSMOS_ENDPOINT', () => {
    expect(loadServiceConfig({ COSMOS_ENDPOINT: 'http://127.0.0.1:8081', COSMOS_KEY: KEY }).cosmos.endpoint).toBe('http://127.0.0.1:8081');
    const err = errorFor({ COSMOS_ENDPOINT: 'http://127.0.0.1:8081' });
    expect(err.problems).toEqual([
      { variable: 'COSMOS_ENDPOINT', message: expect.stringMatching(/plain-HTTP URL, and signing in without COSMOS_KEY \(Microsoft Entra ID\) needs https/) },
    ]);
  });

  it.each([
    ['COSMOS_STARTUP_TIMEOUT_SECONDS', '1'],
    ['COSMOS_STARTUP_TIMEOUT_SECONDS', '600'],
    ['EVENT_TTL_SECONDS', '0'],
    ['EVENT_TTL_SECONDS', '2147483647'],
    ['PORT', '1'],
    ['PORT', '65535'],
    ['SHUTDOWN_DRAIN_SECONDS', '0'],
    ['SHUTDOWN_DRAIN_SECONDS', '120'],
    ['COSMOS_DATABASE', 'd'.repeat(255)],
  ])('accepts %s=%s', (variable, value) => {
    expect(() => loadServiceConfig({ [variable]: value })).not.toThrow();
  });

  it('ignores variables it does not read', () => {
    expect(() => loadServiceConfig({ HOME: '/root', NODE_ENV: 'production' })).not.toThrow();
  });
});

describe('invalid values', () => {
  it.each([
    ['COSMOS_ENDPOINT', 'not a url'],
    ['COSMOS_ENDPOINT', 'my-account.documents.azure.com'],
    ['COSMOS_ENDPOINT', 'ftp://my-account.documents.azure.com/'],
    ['COSMOS_ENDPOINT', ` ${ENDPOINT}`],
    ['COSMOS_ENDPOINT', ''],
    ['COSMOS_DATABASE', ''],
    ['COSMOS_DATABASE', 'a/b'],
    ['COSMOS_DATABASE', 'what?'],
    ['COSMOS_DATABASE', 'd'.repeat(256)],
    ['COSMOS_DATABASE', 'trailing '],
    ['COSMOS_EVENTS_CONTAINER', ''],
    ['COSMOS_EVENTS_CONTAINER', 'a\\b'],
    ['COSMOS_AGGREGATES_CONTAINER', ''],
    ['COSMOS_AGGREGATES_CONTAINER', 'a#b'],
    ['EVENT_TTL_SECONDS', ''],
    ['EVENT_TTL_SECONDS', '-1'],
    ['EVENT_TTL_SECONDS', '1.5'],
    ['EVENT_TTL_SECONDS', '1e3'],
    ['EVENT_TTL_SECONDS', ' 60'],
    ['EVENT_TTL_SECONDS', 'a day'],
    ['EVENT_TTL_SECONDS', '2147483648'],
    ['PORT', ''],
    ['PORT', '0'],
    ['PORT', '65536'],
    ['PORT', '80.5'],
    ['PORT', '0x50'],
    ['PORT', 'http'],
    ['SHUTDOWN_DRAIN_SECONDS', '121'],
    ['SHUTDOWN_DRAIN_SECONDS', '-1'],
    ['SHUTDOWN_DRAIN_SECONDS', '2.5'],
    ['COSMOS_LEASES_CONTAINER', ''],
    ['COSMOS_LEASES_CONTAINER', 'a?b'],
    ['SUBSCRIPTIONS_INSTANCE_ID', ''],
    ['SUBSCRIPTIONS_INSTANCE_ID', ' pod-7'],
    ['SUBSCRIPTIONS_LEASE_SECONDS', '2'],
    ['SUBSCRIPTIONS_LEASE_SECONDS', '3601'],
    ['SUBSCRIPTIONS_LEASE_SECONDS', '30s'],
  ])('%s=%j is refused, naming the variable', (variable, value) => {
    const err = errorFor({ COSMOS_ENDPOINT: ENDPOINT, [variable]: value });
    expect(err.problems.map((p) => p.variable)).toEqual([variable]);
    expect(err.message).toContain(variable);
  });

  it('names every bad variable in one error', () => {
    const err = errorFor({ COSMOS_ENDPOINT: 'nope', PORT: '0', EVENT_TTL_SECONDS: '-5', COSMOS_DATABASE: 'a/b' });
    expect(err.problems.map((p) => p.variable).sort()).toEqual(['COSMOS_DATABASE', 'COSMOS_ENDPOINT', 'EVENT_TTL_SECONDS', 'PORT']);
    for (const variable of ['COSMOS_ENDPOINT', 'PORT', 'EVENT_TTL_SECONDS', 'COSMOS_DATABASE']) {
      expect(err.message).toContain(variable);
    }
  });

  it('says what a valid value looks like', () => {
    expect(errorFor({ PORT: '0' }).message).toMatch(/PORT must be an integer from 1 to 65535, got "0"/);
    expect(errorFor({ COSMOS_ENDPOINT: 'x' }).message).toMatch(/COSMOS_ENDPOINT must be a URL such as https:\/\//);
  });
});

describe('every variable, table-driven', () => {
  // A key without "/" is a valid Cosmos DB id: pasted into an id variable, only the COSMOS_KEY check stops it.
  const SLASHLESS_KEY = KEY.replace(/\//g, 'Q');
  /** For each variable the service reads: values it must refuse. A key (or part of one) is among them. */
  const INVALID: Record<string, string[]> = {
    COSMOS_ENDPOINT: [
      '',
      'not a url',
      'my-account.documents.azure.com',
      'ftp://my-account.documents.azure.com/',
      ` ${ENDPOINT}`,
      'https://admin:s3cr3t@my-account.documents.azure.com/',
      `AccountEndpoint=${ENDPOINT};AccountKey=${KEY};`,
      `${ENDPOINT}?key=${encodeURIComponent(KEY)}`,
      `${ENDPOINT}#${KEY}`,
      KEY,
    ],
    COSMOS_KEY: ['', 'not base64!', `${KEY} `, `${KEY.slice(0, 40)}\n${KEY.slice(40)}`, KEY.replace(/=+$/, ''), `AccountKey=${KEY}`],
    COSMOS_DATABASE: ['', 'a/b', 'a\\b', 'a?b', 'a#b', 'd'.repeat(256), 'trailing ', '.', '..', '\t', 'lone\ud800', KEY, SLASHLESS_KEY],
    COSMOS_EVENTS_CONTAINER: ['', 'a/b', '.', '..', '  ', KEY, SLASHLESS_KEY],
    COSMOS_AGGREGATES_CONTAINER: ['', 'a#b', '.', '..', '\u3000', KEY, SLASHLESS_KEY],
    COSMOS_LEASES_CONTAINER: ['', 'a?b', '.', '..', ' ', KEY, SLASHLESS_KEY],
    COSMOS_STARTUP_TIMEOUT_SECONDS: ['', '0', '601', '1.5', '15s', KEY],
    SUBSCRIPTIONS_INSTANCE_ID: ['', ' web-1', 'web 1', 'i'.repeat(129), 'caf\u00e9', KEY, SLASHLESS_KEY],
    SUBSCRIPTIONS_LEASE_SECONDS: ['', '0', '2', '3601', '1.5', '30s', KEY],
    EVENT_TTL_SECONDS: ['', '-1', '1.5', '1e3', ' 60', 'a day', '2147483648', '99999999999999999999', KEY, `60 ${KEY}`],
    PORT: ['', '0', '65536', '80.5', '0x50', 'http', '+80', KEY],
    SHUTDOWN_DRAIN_SECONDS: ['', '-1', '121', '2.5', '8s', KEY],
    ADMIN_TOKEN: ['', 'too-short', 'a'.repeat(31), `${ADMIN_TOKEN} `, `with space ${ADMIN_TOKEN}`, `caf\u00e9${ADMIN_TOKEN}`, SLASHLESS_KEY],
  };

  it('covers every variable the service reads', () => {
    const read = new Set<string>();
    const spy = new Proxy({} as Env, {
      get: (_target, name) => {
        if (typeof name === 'string') read.add(name);
        return undefined;
      },
    });
    loadServiceConfig(spy);
    expect([...read].sort()).toEqual(Object.keys(INVALID).sort());
  });

  const cases = Object.entries(INVALID).flatMap(([variable, values]) => values.map((value) => [variable, value] as const));

  it.each(cases)('%s=%j is refused, naming that variable alone and quoting no key', (variable, value) => {
    // The key of the account, so a value equal to it is recognised as one; the endpoint, so the key is usable.
    const env: Env = { COSMOS_ENDPOINT: ENDPOINT, COSMOS_KEY: SLASHLESS_KEY, [variable]: value };
    const err = errorFor(env);
    expect(err.problems.map((p) => p.variable)).toEqual([variable]);
    expect(err.message).toContain(variable);
    for (const secret of [KEY, SLASHLESS_KEY]) {
      for (let i = 0; i + 12 <= secret.length; i += 4) expect(err.message).not.toContain(secret.slice(i, i + 12));
    }
  });
});

describe('secrets', () => {
  const badKeys: Array<[string, string]> = [
    ['not base64', 'this is-not*a%key'],
    ['without its padding', KEY.replace(/=+$/, '')],
    ['with a line break', `${KEY.slice(0, 40)}\n${KEY.slice(40)}`],
    ['with a trailing space', `${KEY} `],
    ['base64url', KEY.replace(/\+/g, '-').replace(/\//g, '_') + '-_'],
    ['a connection string', `AccountEndpoint=${ENDPOINT};AccountKey=${KEY};`],
  ];

  it.each(badKeys)('a COSMOS_KEY %s is refused, naming COSMOS_KEY, never quoting the value', (_what, value) => {
    const err = errorFor({ COSMOS_ENDPOINT: ENDPOINT, COSMOS_KEY: value });
    expect(err.problems.map((p) => p.variable)).toEqual(['COSMOS_KEY']);
    expect(err.message).toContain('COSMOS_KEY');
    expect(err.message).not.toContain(value);
    expect(err.message).not.toContain(value.trim());
    // Not even a piece of it: no 8-character run of the value appears in the message.
    for (let i = 0; i + 8 <= value.length; i++) {
      const piece = value.slice(i, i + 8);
      if (/[A-Za-z0-9+/]{8}/.test(piece)) expect(err.message).not.toContain(piece);
    }
  });

  it.each([
    ['too short', 'short-but-secret'],
    ['with a space', `${ADMIN_TOKEN.slice(0, 20)} ${ADMIN_TOKEN.slice(20)}`],
    ['the account key again', KEY],
  ])('an ADMIN_TOKEN %s is refused, naming ADMIN_TOKEN, never quoting the value', (_what, value) => {
    const err = errorFor({ COSMOS_ENDPOINT: ENDPOINT, COSMOS_KEY: KEY, ADMIN_TOKEN: value });
    expect(err.problems.map((p) => p.variable)).toEqual(['ADMIN_TOKEN']);
    for (let i = 0; i + 8 <= value.length; i++) expect(err.message).not.toContain(value.slice(i, i + 8));
  });

  it.each(['COSMOS_DATABASE', 'COSMOS_LEASES_CONTAINER', 'SUBSCRIPTIONS_INSTANCE_ID', 'PORT', 'EVENT_TTL_SECONDS', 'COSMOS_ENDPOINT'])(
    'a secret pasted into %s is refused and never quoted, whichever is read first: a hex token as much as a key',
    (variable) => {
      const hexToken = 'c0ffee'.repeat(10) + '0123';
      for (const secrets of [{ ADMIN_TOKEN: hexToken }, { COSMOS_KEY: KEY }]) {
        const value = Object.values(secrets)[0];
        for (const pasted of [value, `60 ${value}`]) {
          const env: Env = { COSMOS_ENDPOINT: ENDPOINT, COSMOS_KEY: KEY, ...secrets, [variable]: pasted };
          const err = errorFor(env);
          expect(err.problems.map((p) => p.variable)).toEqual([variable]);
          for (let i = 0; i + 12 <= value.length; i += 4) expect(err.message).not.toContain(value.slice(i, i + 12));
        }
      }
    },
  );

  it('an empty COSMOS_KEY is refused rather than silently switching to DefaultAzureCredential', () => {
    const err = errorFor({ COSMOS_ENDPOINT: ENDPOINT, COSMOS_KEY: '' });
    expect(err.problems.map((p) => p.variable)).toEqual(['COSMOS_KEY']);
  });

  it('a COSMOS_KEY without COSMOS_ENDPOINT is refused: it would be ignored by the in-memory server', () => {
    const err = errorFor({ COSMOS_KEY: KEY });
    expect(err.problems).toEqual([{ variable: 'COSMOS_KEY', message: expect.stringContaining('COSMOS_ENDPOINT') }]);
    expect(err.message).not.toContain(KEY);
  });

  it('a connection string in COSMOS_ENDPOINT is refused without quoting it', () => {
    const value = `AccountEndpoint=${ENDPOINT};AccountKey=${KEY};`;
    const err = errorFor({ COSMOS_ENDPOINT: value });
    expect(err.problems.map((p) => p.variable)).toEqual(['COSMOS_ENDPOINT']);
    expect(err.message).toMatch(/connection string/);
    expect(err.message).not.toContain(KEY.slice(0, 20));
  });

  it('credentials in the COSMOS_ENDPOINT URL are refused without quoting them', () => {
    const err = errorFor({ COSMOS_ENDPOINT: 'https://admin:s3cr3t-passw0rd@my-account.documents.azure.com/' });
    expect(err.problems.map((p) => p.variable)).toEqual(['COSMOS_ENDPOINT']);
    expect(err.message).not.toContain('s3cr3t-passw0rd');
  });
});

describe('wiring into @nestjs/config', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
  });

  it('validateEnv returns the environment unchanged, so no default is copied into process.env', () => {
    const env = { PORT: '8080' };
    expect(validateEnv(env)).toBe(env);
    expect(env).toEqual({ PORT: '8080' });
  });

  it('ConfigModule.forRoot with validateEnv refuses to start, naming the variable', async () => {
    delete process.env.COSMOS_ENDPOINT;
    process.env.PORT = '99999';
    await expect(ConfigModule.forRoot({ ignoreEnvFile: true, validate: validateEnv, load: configLoaders })).rejects.toThrow(
      /PORT must be an integer from 1 to 65535/,
    );
  });

  it('the registerAs namespaces read process.env with the defaults applied', () => {
    for (const name of ['COSMOS_ENDPOINT', 'COSMOS_KEY', 'COSMOS_DATABASE', 'EVENT_TTL_SECONDS', 'PORT']) delete process.env[name];
    process.env.COSMOS_EVENTS_CONTAINER = 'ev';
    process.env.EVENT_TTL_SECONDS = '60';
    expect(cosmosConfig()).toEqual({
      databaseId: 'eventstore',
      eventsContainerId: 'ev',
      aggregatesContainerId: 'aggregates',
      startupTimeoutMs: 15_000,
      embeddedWhenNoEndpoint: true,
    });
    expect(eventStoreConfig()).toEqual({ eventTtlSeconds: 60 });
    expect(appConfig()).toEqual({ port: 3000, shutdownDrainSeconds: 8 });
    expect([cosmosConfig.KEY, eventStoreConfig.KEY, appConfig.KEY]).toEqual([
      'CONFIGURATION(cosmos)',
      'CONFIGURATION(eventStore)',
      'CONFIGURATION(app)',
    ]);
  });

  it('a registerAs namespace refuses a bad variable too, naming it', () => {
    process.env.EVENT_TTL_SECONDS = 'soon';
    expect(() => eventStoreConfig()).toThrow(/EVENT_TTL_SECONDS/);
  });
});
