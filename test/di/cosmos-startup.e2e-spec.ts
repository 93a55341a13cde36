/*
 * CosmosModule's start-up checks under faults, through the fault proxy: transient faults (a lost
 * acknowledgement, a 503) are retried within the start-up time, and the leases container of the
 * subscriptions likewise; a fault that another attempt would not fix fails at once; an endpoint that never
 * answers, or whose host does not resolve, fails within `startupTimeoutMs` with the cause named.
 */
import { Agent } from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { CosmosClient } from '@azure/cosmos';
import { CosmosModule, CosmosStartupTimeoutError, SubscriptionsModule, type CosmosModuleOptions } from '../../src/index.js';
import { startEmbeddedCosmos, startFaultProxy, type EmbeddedCosmos, type FaultProxy } from '../../src/testing.js';

let cosmos: EmbeddedCosmos;
let proxy: FaultProxy;
let direct: CosmosClient;
let databaseSeq = 0;

beforeAll(async () => {
  Logger.overrideLogger(false); // the retries' warnings are expected
  cosmos = await startEmbeddedCosmos();
  proxy = await startFaultProxy({ target: cosmos.endpoint });
  direct = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key });
});

afterEach(() => {
  proxy.clearRules();
  proxy.clearRecords();
});

afterAll(async () => {
  direct.dispose();
  await proxy.close();
  await cosmos.close();
});

function options(overrides: Partial<CosmosModuleOptions> = {}): CosmosModuleOptions {
  return { endpoint: proxy.endpoint, key: cosmos.key, databaseId: `startup-${++databaseSeq}`, ...overrides };
}

async function boot(imports: unknown[]) {
  const moduleRef = await Test.createTestingModule({ imports: imports as never[] }).compile();
  return moduleRef.createNestApplication({ logger: false }).init();
}

async function containerIds(databaseId: string): Promise<string[]> {
  const { resources } = await direct.database(databaseId).containers.readAll().fetchAll();
  return resources.map((c) => c.id).sort();
}

const creates = (path: RegExp) => ({ kind: 'metadata' as const, method: 'POST', path });

describe('start-up under transient faults', () => {
  it('retries a database creation whose acknowledgement was lost', async () => {
    const opts = options();
    // The server creates the database; the client never hears of it.
    const lost = proxy.addRule({ ...creates(/^\/dbs$/), times: 1, action: { type: 'reset', when: 'after' } });
    const app = await boot([CosmosModule.forRoot(opts)]);
    expect(lost.fired).toBe(1);
    expect(await containerIds(opts.databaseId)).toEqual(['aggregates', 'events']);
    await app.close();
  });

  it('retries container creations answered 503 and cut off before they reached the server', async () => {
    const opts = options();
    const busy = proxy.addRule({ ...creates(/\/colls$/), times: 2, action: { type: 'status', status: 503 } });
    const cut = proxy.addRule({ kind: 'metadata', method: 'GET', path: /\/colls\/[^/]+$/, times: 2, action: { type: 'reset', when: 'before' } });
    const app = await boot([CosmosModule.forRoot(opts)]);
    expect([busy.fired, cut.fired]).toEqual([2, 2]);
    expect(await containerIds(opts.databaseId)).toEqual(['aggregates', 'events']);
    await app.close();
  });

  it('retries the creation of the subscriptions leases container', async () => {
    const opts = options();
    // The leases container is created after the event store's two: the third container creation.
    let containerCreates = 0;
    const onlyLeases = proxy.addRule({
      kind: 'metadata',
      method: 'POST',
      path: /\/colls$/,
      match: () => ++containerCreates === 3,
      action: { type: 'reset', when: 'after' },
    });
    const app = await boot([CosmosModule.forRoot(opts), SubscriptionsModule.forRoot({ autoStart: false })]);
    expect(onlyLeases.fired).toBe(1);
    expect(await containerIds(opts.databaseId)).toEqual(['aggregates', 'events', 'leases']);
    await app.close();
  });

  it('fails at once, without retrying, on a fault another attempt would not fix', async () => {
    const refused = proxy.addRule({ kind: 'metadata', action: { type: 'status', status: 401 } });
    await expect(boot([CosmosModule.forRoot(options({ startupTimeoutMs: 60_000 }))])).rejects.toMatchObject({ code: 401 });
    // The SDK's own account read and the database check: each once.
    expect(refused.fired).toBeLessThanOrEqual(2);
  });
});

describe('start-up that cannot reach Cosmos DB fails within startupTimeoutMs, naming the cause', () => {
  let silent: Server;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  it('an endpoint that accepts connections and never answers', async () => {
    const { port } = silent.address() as AddressInfo;
    const error = await boot([CosmosModule.forRoot(options({ endpoint: `http://127.0.0.1:${port}`, startupTimeoutMs: 1_500 }))]).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(CosmosStartupTimeoutError);
    expect((error as Error).message).toMatch(/^checking database "startup-\d+": Cosmos DB did not answer within 1500 ms$/);
  });

  it('a host that does not resolve (@azure/cosmos alone retries it for two minutes)', async () => {
    // A resolver that knows no host: no lookup leaves the machine. It answers later, as DNS does: called
    // back at once, Node 24 retries the connection in a loop that never yields to the start-up's timer.
    const agent = new Agent({
      lookup: (hostname, _options, callback) =>
        setImmediate(() => callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname }), '', 0)),
    });
    const error = await boot([
      CosmosModule.forRoot(
        options({ endpoint: 'https://no-such-account.invalid:443/', startupTimeoutMs: 1_500, clientOptions: { agent } }),
      ),
    ]).then(
      () => undefined,
      (err: unknown) => err,
    );
    agent.destroy();
    expect(error).toBeInstanceOf(CosmosStartupTimeoutError);
    expect((error as Error).message).toMatch(/could not be used within 1500 ms; last fault: .*ENOTFOUND/);
    expect(((error as Error).cause as { code?: unknown }).code).toBe('ENOTFOUND');
  });

  it('refuses a startupTimeoutMs that is not a positive integer, naming the option', async () => {
    await expect(boot([CosmosModule.forRoot(options({ startupTimeoutMs: 0 }))])).rejects.toThrow(/"startupTimeoutMs"/);
  });
});
