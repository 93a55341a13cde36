/*
 * Start-up of the real AppModule with a bad environment: the error (as main.ts logs it, through
 * describeStartupFailure) names the variable to fix, whether the value is malformed, the endpoint does not
 * answer or the account refuses the key; and no key ever shows in the error or in the log.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CosmosStartupTimeoutError } from '../../src/index.js';
import { describeStartupFailure } from '../../example/src/config/startup-failure.js';
import { CapturingLogger, startService } from '../support/app.js';

// Shaped like an account key (64 bytes in base64), made up for this test.
const KEY = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 53 + 7) % 256)).toString('base64');

/** No piece of 12 characters of the key anywhere in `text`. */
function expectNoKey(text: string): void {
  for (let i = 0; i + 12 <= KEY.length; i += 4) expect(text).not.toContain(KEY.slice(i, i + 12));
}

/** Boots the service with `env`, expecting it to fail; what main.ts would log, and what the service logged. */
async function failedStart(env: Record<string, string>): Promise<{ line: string; log: string; raw: string }> {
  const logger = new CapturingLogger();
  let error: unknown;
  try {
    const service = await startService(env, logger);
    await service.close();
  } catch (err) {
    error = err;
  }
  if (error === undefined) throw new Error(`expected the service to refuse ${JSON.stringify(Object.keys(env))}`);
  const raw = [String(error), (error as Error).stack ?? '', JSON.stringify(error) ?? ''].join('\n');
  return { line: describeStartupFailure(error, env), log: logger.text, raw };
}

/** A local HTTP server answering every request with `status` and a Cosmos-style JSON error. */
async function answering(status: number): Promise<{ endpoint: string; close(): Promise<void> }> {
  const server: Server = createServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ code: status === 401 ? 'Unauthorized' : 'Forbidden', message: 'The input authorization token can not serve the request.' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

let closedEndpoint: string;

beforeAll(async () => {
  const closed = await answering(200);
  await closed.close();
  closedEndpoint = closed.endpoint;
  // The first boot evaluates app.module, whose ConfigModule.forRoot() validates once, at import: make it a good one,
  // so each case below fails where a later boot fails, in the registerAs namespaces and the Cosmos module.
  const service = await startService({}, new CapturingLogger());
  await service.close();
});

describe('a malformed variable stops the start-up, naming it', () => {
  // Titles say what the value is, not the value: it may be the key.
  it.each([
    ['COSMOS_ENDPOINT', 'a host without a scheme', 'my-account.documents.azure.com'],
    ['COSMOS_ENDPOINT', 'a URL with the key in its query', `https://my-account.documents.azure.com/?key=${encodeURIComponent(KEY)}`],
    ['COSMOS_KEY', 'the key with a line break', `${KEY}\n`],
    ['COSMOS_KEY', 'a connection string', `AccountEndpoint=https://my-account.documents.azure.com/;AccountKey=${KEY};`],
    ['COSMOS_DATABASE', '".."', '..'],
    ['COSMOS_EVENTS_CONTAINER', '"a/b"', 'a/b'],
    ['COSMOS_AGGREGATES_CONTAINER', 'the key', KEY],
    ['EVENT_TTL_SECONDS', 'the key', KEY],
    ['PORT', 'the key', KEY],
  ])('%s set to %s', async (variable, _what, value) => {
    // A loopback endpoint nothing listens on: no boot of these may reach out to the network.
    const env = { COSMOS_ENDPOINT: closedEndpoint, COSMOS_KEY: KEY, [variable]: value };
    const { line, log, raw } = await failedStart(env);
    expect(line).toContain(variable);
    for (const text of [line, log, raw]) expectNoKey(text);
  });
});

describe('an account that cannot be used stops the start-up, naming what to check', () => {
  it('an endpoint nothing listens on: COSMOS_ENDPOINT', async () => {
    const closed = await answering(200);
    await closed.close();
    // Refused connections are retried for COSMOS_STARTUP_TIMEOUT_SECONDS (an emulator may be starting).
    const { line, log, raw } = await failedStart({ COSMOS_ENDPOINT: closed.endpoint, COSMOS_KEY: KEY, COSMOS_STARTUP_TIMEOUT_SECONDS: '1' });
    expect(line).toMatch(/could not be reached \(ECONNREFUSED\): check COSMOS_ENDPOINT/);
    expect(line).toContain(closed.endpoint);
    for (const text of [line, log, raw]) expectNoKey(text);
  });

  it('an account that refuses the key (401): COSMOS_KEY', async () => {
    const server = await answering(401);
    try {
      const { line, log, raw } = await failedStart({ COSMOS_ENDPOINT: server.endpoint, COSMOS_KEY: KEY });
      expect(line).toMatch(/refused the credentials \(401\): check COSMOS_KEY/);
      for (const text of [line, log, raw]) expectNoKey(text);
    } finally {
      await server.close();
    }
  });

  it('an account that forbids the request (403): COSMOS_KEY or the firewall', async () => {
    const server = await answering(403);
    try {
      const { line, log, raw } = await failedStart({ COSMOS_ENDPOINT: server.endpoint, COSMOS_KEY: KEY });
      expect(line).toMatch(/refused the request \(403\): check COSMOS_KEY/);
      for (const text of [line, log, raw]) expectNoKey(text);
    } finally {
      await server.close();
    }
  });
});

describe('an endpoint that is not Cosmos DB stops the start-up, naming COSMOS_ENDPOINT', () => {
  it('a web server answering HTML', async () => {
    const server: Server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><html><body>It works!</body></html>');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const { line, log, raw } = await failedStart({ COSMOS_ENDPOINT: endpoint, COSMOS_KEY: KEY, COSMOS_STARTUP_TIMEOUT_SECONDS: '2' });
      expect(line).toMatch(/did not answer as Cosmos DB does .*check COSMOS_ENDPOINT/);
      expect(line).toContain(endpoint);
      for (const text of [line, log, raw]) expectNoKey(text);
    } finally {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
  });
});

describe('describeStartupFailure', () => {
  it('takes the key out of any message that carries it', () => {
    const line = describeStartupFailure(new Error(`boom with ${KEY} inside`), { COSMOS_KEY: KEY });
    expect(line).toBe('boom with [COSMOS_KEY] inside');
  });

  it('names COSMOS_KEY, in one line, when keyless sign-in fails', () => {
    const chained = Object.assign(
      new Error(
        'ChainedTokenCredential authentication failed.\nCredentialUnavailableError: EnvironmentCredential is unavailable.\n' +
          'CredentialUnavailableError: ManagedIdentityCredential: no managed identity endpoint found.',
      ),
      { name: 'AggregateAuthenticationError' },
    );
    const line = describeStartupFailure(chained, { COSMOS_ENDPOINT: 'https://acct.documents.azure.com:443/' });
    expect(line).toMatch(
      /^Cosmos DB at https:\/\/acct\.documents\.azure\.com: signing in with Microsoft Entra ID failed \(COSMOS_KEY is not set\): set COSMOS_KEY, .* ChainedTokenCredential authentication failed\.$/,
    );
  });

  it('names COSMOS_KEY and the package when @azure/identity is missing', () => {
    const missing = new Error(
      'CosmosModule: signing in without "key" or "credential" uses DefaultAzureCredential from @azure/identity, which is not installed: ...',
    );
    expect(describeStartupFailure(missing, { COSMOS_ENDPOINT: 'https://acct.documents.azure.com/' })).toMatch(
      /^COSMOS_KEY is not set and @azure\/identity, .* is not installed: set COSMOS_KEY, or install @azure\/identity/,
    );
  });

  it('names COSMOS_ENDPOINT when start-up ran out of time, with the cause the SDK kept retrying', () => {
    const env = { COSMOS_ENDPOINT: 'https://nope.documents.azure.com/', COSMOS_KEY: KEY };
    const unresolved = Object.assign(new Error('getaddrinfo ENOTFOUND nope.documents.azure.com'), { code: 'ENOTFOUND' });
    expect(describeStartupFailure(new CosmosStartupTimeoutError('checking database "eventstore"', 15_000, unresolved), env)).toMatch(
      /could not be reached \(ENOTFOUND\): check COSMOS_ENDPOINT\. checking database "eventstore": .* within 15 s; last fault: getaddrinfo ENOTFOUND/,
    );
    expect(describeStartupFailure(new CosmosStartupTimeoutError('checking database "eventstore"', 15_000), env)).toMatch(
      /could not be used in time: check COSMOS_ENDPOINT .*did not answer within 15 s$/,
    );
  });

  it('names PORT when the HTTP server cannot listen', () => {
    const taken = Object.assign(new Error('listen EADDRINUSE: address already in use :::8080'), { code: 'EADDRINUSE', syscall: 'listen' });
    expect(describeStartupFailure(taken, { PORT: '8080' })).toBe('PORT 8080 is in use by another process: stop it, or set PORT to a free port');
  });

  it('keeps any failure to one line', () => {
    expect(describeStartupFailure(new Error('first\n  {\n  "code": 1\n}'), {})).toBe('first { "code": 1 }');
  });

  it('passes other failures through unchanged', () => {
    expect(describeStartupFailure(new Error('container "events" exists with partition key ["/x"]'), {})).toBe(
      'container "events" exists with partition key ["/x"]',
    );
  });
});
