/*
 * The fault proxy itself: every request of the SDK goes through it (the account document it rewrites is
 * what keeps the client there), it tells request kinds apart, and each rule does what it says.
 */
import { ChangeFeedStartFrom, type PluginConfig } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import { CosmosEventStore, ensureContainers, ensureDatabase } from '../../src/index.js';
import { startFaultProxy, type CosmosRequestKind, type FaultProxy } from '../../src/testing.js';
import { bytes, gate, proxiedClient, startFaultyCosmos, until, type FaultyCosmos } from '../support/faults.js';

let env: FaultyCosmos;

beforeAll(async () => {
  env = await startFaultyCosmos();
});
afterEach(() => {
  env.proxy.clearRules();
  env.proxy.clearRecords();
});
afterAll(() => env?.close());

const statusOf = (err: unknown) => (err as { code?: unknown } | undefined)?.code;

describe('routing', () => {
  /** Runs a store's whole life (database, containers, writes, reads) on a client of `proxy`, noting where each request went. */
  async function workload(proxy: FaultProxy): Promise<string[]> {
    const endpoints: string[] = [];
    const noteEndpoint: PluginConfig = {
      on: 'request',
      plugin: (context, _diagnostics, next) => {
        endpoints.push((context.endpoint ?? '').replace(/\/$/, ''));
        return next(context);
      },
    };
    const client = proxiedClient(env.cosmos, proxy, {}, [noteEndpoint]);
    try {
      const database = await ensureDatabase(client, `routing-${randomUUID()}`);
      await ensureContainers(database);
      const store = new CosmosEventStore(database.container('events'));
      await store.save('a', [{ version: 1, data: bytes('one') }]);
      await store.load('a');
      await store.loadTail('a', 1);
      await database.container('events').item('1', 'a').read();
    } finally {
      client.dispose();
    }
    await proxy.settle();
    return endpoints;
  }

  it('sends every request of the client through the proxy, the account document pointing back at it', async () => {
    const endpoints = await workload(env.proxy);
    expect(endpoints.length).toBeGreaterThan(5);
    expect(new Set(endpoints)).toEqual(new Set([env.proxy.endpoint]));
    // Every request the client sent arrived at the proxy: nothing went around it.
    expect(env.proxy.count()).toBe(endpoints.length);
    const account = env.proxy.records.find((r) => r.path === '/');
    expect(account).toMatchObject({ kind: 'metadata', method: 'GET', status: 200 });
  });

  it('would be bypassed without the rewrite: the server advertises its own address (the check above can fail)', async () => {
    const bypassed = await startFaultProxy({ target: env.cosmos.endpoint, rewriteAccountLocations: false });
    try {
      const endpoints = await workload(bypassed);
      expect(endpoints.some((e) => e.startsWith(env.cosmos.endpoint))).toBe(true);
      expect(bypassed.count()).toBeLessThan(endpoints.length);
    } finally {
      await bypassed.close();
    }
  });
});

describe('request kinds', () => {
  it('tells batch, query, query plan, point read, writes, delete, feed and metadata apart', async () => {
    const { events, proxy } = env;
    const id = `kinds-${randomUUID()}`;
    const kindsOf = async (fn: () => Promise<unknown>): Promise<CosmosRequestKind[]> => {
      proxy.clearRecords();
      await fn();
      await proxy.settle();
      return [...new Set(proxy.records.map((r) => r.kind))].sort();
    };
    expect(await kindsOf(() => events.items.batch([{ operationType: 'Create', resourceBody: { id: '1', a: id } }], id))).toEqual(['batch']);
    expect(await kindsOf(() => events.items.query('SELECT * FROM c', { partitionKey: id }).fetchAll())).toEqual(['query', 'query-plan']);
    expect(await kindsOf(() => events.item('1', id).read())).toEqual(['read']);
    expect(await kindsOf(() => events.items.create({ id: '2', a: id }))).toEqual(['write']);
    expect(await kindsOf(() => events.items.upsert({ id: '2', a: id, x: 1 }))).toEqual(['write']);
    expect(await kindsOf(() => events.item('2', id).replace({ id: '2', a: id, x: 2 }))).toEqual(['write']);
    expect(await kindsOf(() => events.item('2', id).delete())).toEqual(['delete']);
    // The change feed looks up the partition key ranges first.
    expect(
      await kindsOf(() => events.items.getChangeFeedIterator({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning(id) }).readNext()),
    ).toEqual(['feed', 'metadata']);
    expect(await kindsOf(() => events.read())).toEqual(['metadata']);
    expect(proxy.records[0].partitionKey).toBeUndefined();
    await kindsOf(() => events.item('1', id).read());
    expect(proxy.records[0].partitionKey).toBe(id);
  });
});

describe('rules', () => {
  const item = (id: string) => env.events.item('1', id);
  const readAll = async (ids: string[]) => {
    for (const id of ids) await item(id).read().catch(() => undefined);
  };

  it('fires a fixed number of times, on matching requests only', async () => {
    const { proxy } = env;
    const rule = proxy.addRule({ kind: 'read', method: 'GET', path: /\/docs\/1$/, times: 2, action: { type: 'status', status: 400 } });
    const missed = proxy.addRule({ kind: 'read', method: 'PUT', action: { type: 'status', status: 400 } });
    const errors: unknown[] = [];
    for (let i = 0; i < 4; i++) errors.push(await item(`times-${i}`).read().then(() => undefined, statusOf));
    expect(errors).toEqual([400, 400, undefined, undefined]);
    expect(rule.fired).toBe(2);
    expect(missed.fired).toBe(0);
    expect(proxy.records.map((r) => r.fault)).toEqual(['status', 'status', undefined, undefined]);
    rule.remove();
  });

  it('fires with a probability drawn from a seeded generator: the same seed, the same requests', async () => {
    const pattern = async (seed: number) => {
      const proxy = await startFaultProxy({ target: env.cosmos.endpoint, seed });
      const client = proxiedClient(env.cosmos, proxy);
      try {
        const container = client.database(env.events.database.id).container('events');
        await container.read();
        proxy.clearRecords();
        proxy.addRule({ kind: 'read', probability: 0.3, action: { type: 'status', status: 400 } });
        for (let i = 0; i < 60; i++) await container.item('1', `p-${i}`).read().catch(() => undefined);
        return proxy.records.map((r) => (r.fault ? 'x' : '.')).join('');
      } finally {
        client.dispose();
        await proxy.close();
      }
    };
    const first = await pattern(42);
    expect(await pattern(42)).toBe(first);
    expect(await pattern(43)).not.toBe(first);
    const fired = [...first].filter((c) => c === 'x').length;
    expect(fired).toBeGreaterThan(5);
    expect(fired).toBeLessThan(40);
  });

  it('adds latency, and holds a request until a promise settles', async () => {
    const { proxy } = env;
    proxy.addRule({ kind: 'read', times: 1, action: { type: 'latency', ms: 150 } });
    await readAll(['latency']);
    const [delayed] = proxy.records;
    expect(delayed.upstreamStatus).toBe(404);
    expect(delayed.answeredAt! - delayed.receivedAt).toBeGreaterThanOrEqual(145);

    const held = gate();
    proxy.addRule({ kind: 'read', times: 1, action: { type: 'latency', until: held.promise } });
    let done = false;
    const read = item('held').read().finally(() => (done = true));
    await until(() => proxy.count({ fault: 'latency' }) === 2);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(done).toBe(false);
    held.open();
    await read;
  });

  it('answers 429 with x-ms-retry-after-ms, and 503/408 before or after the server ran the request', async () => {
    const { proxy, events, directEvents } = env;
    const id = `status-${randomUUID()}`;
    proxy.addRule({ kind: 'write', times: 1, action: { type: 'status', status: 429, retryAfterMs: 20 } });
    await events.items.create({ id: '429', a: id }); // the SDK retried it
    expect(proxy.records.map((r) => r.status)).toEqual([429, 201]);

    proxy.addRule({ kind: 'write', times: 1, action: { type: 'status', status: 503 } });
    expect(await events.items.create({ id: 'before', a: id }).catch(statusOf)).toBe(503);
    expect((await directEvents.item('before', id).read()).statusCode).toBe(404);

    proxy.addRule({ kind: 'write', times: 1, action: { type: 'status', status: 408, when: 'after' } });
    expect(await events.items.create({ id: 'after', a: id }).catch(statusOf)).toBe(408);
    expect((await directEvents.item('after', id).read()).statusCode).toBe(200);
    expect(proxy.records.slice(-1)[0]).toMatchObject({ status: 408, upstreamStatus: 201, fault: 'status' });
  });

  it('resets the connection before the server sees the request, or after it ran it', async () => {
    const { proxy, events, directEvents } = env;
    const id = `reset-${randomUUID()}`;
    proxy.addRule({ kind: 'write', times: 1, action: { type: 'reset', when: 'before' } });
    expect(await events.items.create({ id: 'before', a: id }).catch(statusOf)).toBe('ECONNRESET');
    expect((await directEvents.item('before', id).read()).statusCode).toBe(404);
    expect(proxy.records[0].status).toBe('reset');
    expect(proxy.records[0].upstreamStatus).toBeUndefined();

    proxy.addRule({ kind: 'write', times: 1, action: { type: 'reset', when: 'after' } });
    expect(await events.items.create({ id: 'after', a: id }).catch(statusOf)).toBe('ECONNRESET');
    expect((await directEvents.item('after', id).read()).statusCode).toBe(200);
    expect(proxy.records[1]).toMatchObject({ status: 'reset', upstreamStatus: 201 });
  });
});
