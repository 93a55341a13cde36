/*
 * Each gap of @vercel/cosmosdb-server that startEmbeddedCosmos() closes, shown by running the same check
 * against both: the bare library fails it (the gap, as COSMOS-FACTS.md documents it) and our server
 * passes it (Cosmos DB's behaviour). Checks that must hold on both show we broke nothing on the way.
 */
import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CosmosClient, type Container, type CosmosClientOptions, type OperationInput, type PluginConfig } from '@azure/cosmos';
import { startEmbeddedCosmos, type EmbeddedCosmos } from '../../src/testing.js';
import { clientWithPlugins } from '../support/cosmos.js';

const require = createRequire(import.meta.url);
const { createHttpServer } = require('@vercel/cosmosdb-server') as { createHttpServer: () => Server };

const MiB = 1024 * 1024;
// The emulator's published well-known key; neither server checks signatures.
const KEY = 'C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==';

interface Target {
  client: CosmosClient;
  /** HTTP status of every batch request the client sent, in order (also when the SDK throws). */
  batchStatuses: number[];
}

let bareServer: Server;
let ours: EmbeddedCosmos;
const targets: Record<'bare' | 'ours', Target> = {} as Record<'bare' | 'ours', Target>;

function connect(endpoint: string, extra: Partial<CosmosClientOptions> = {}): Target {
  const batchStatuses: number[] = [];
  const recordBatchStatus: PluginConfig = {
    on: 'request',
    plugin: async (context, _diagnostics, next) => {
      if (context.operationType !== 'batch') return next(context);
      try {
        const response = await next(context);
        batchStatuses.push(response.code ?? 0);
        return response;
      } catch (err) {
        batchStatuses.push((err as { code?: number }).code ?? 0);
        throw err;
      }
    },
  };
  return { client: clientWithPlugins({ endpoint, key: KEY, ...extra }, [recordBatchStatus]), batchStatuses };
}

beforeAll(async () => {
  bareServer = createHttpServer();
  await new Promise<void>((resolve) => bareServer.listen(0, '127.0.0.1', resolve));
  const { port } = bareServer.address() as AddressInfo;
  // The bare server advertises https endpoints in its account metadata: stay on the one given.
  targets.bare = connect(`http://127.0.0.1:${port}`, { connectionPolicy: { enableEndpointDiscovery: false } });
  ours = await startEmbeddedCosmos();
  targets.ours = connect(ours.endpoint);
});

afterAll(async () => {
  targets.bare?.client.dispose();
  targets.ours?.client.dispose();
  await new Promise<void>((resolve) => {
    bareServer?.close(() => resolve());
    bareServer?.closeAllConnections();
  });
  await ours?.close();
});

/** A fresh container with partition key `/a`. */
async function freshContainer(target: Target): Promise<Container> {
  const { database } = await target.client.databases.createIfNotExists({ id: 'gaps' });
  const { container } = await database.containers.createIfNotExists({ id: `c-${randomUUID()}`, partitionKey: { paths: ['/a'] } });
  return container;
}

const create = (a: string, v: number, extra: Record<string, unknown> = {}): OperationInput => ({
  operationType: 'Create',
  resourceBody: { id: String(v), a, v, ...extra },
});

async function versionsIn(container: Container, a: string): Promise<number[]> {
  const { resources } = await container.items
    .query<{ v: number }>({ query: 'SELECT c.v FROM c WHERE c.a = @a', parameters: [{ name: '@a', value: a }] }, { partitionKey: a })
    .fetchAll();
  return resources.map((d) => d.v).sort((x, y) => x - y);
}

// --- (a) a failed atomic batch ------------------------------------------------------------------

/** Creates versions 4, 2, 5 in one atomic batch against existing 1-3, and reports what came of it. */
async function failedBatch(target: Target) {
  const container = await freshContainer(target);
  await container.items.batch([1, 2, 3].map((v) => create('agg', v)), 'agg');
  const response = await container.items.batch([4, 2, 5].map((v) => create('agg', v)), 'agg');
  return {
    status: response.code,
    statuses: response.result?.map((r) => r.statusCode),
    versions: await versionsIn(container, 'agg'),
  };
}

const COSMOS_FAILED_BATCH = { status: 207, statuses: [424, 409, 424], versions: [1, 2, 3] };

describe('a failed atomic batch leaves no trace and is answered 207 with per-operation statuses', () => {
  it('the bare server keeps the operations before the failure and answers 200 (the gap)', async () => {
    const observed = await failedBatch(targets.bare);
    expect(observed).not.toEqual(COSMOS_FAILED_BATCH);
    expect(observed.versions).toContain(4);
    expect(observed.status).toBe(200);
  });

  it('the embedded server rolls the batch back and answers as Cosmos DB does', async () => {
    expect(await failedBatch(targets.ours)).toEqual(COSMOS_FAILED_BATCH);
  });

  it('rolls back every kind of operation applied before the failure', async () => {
    const container = await freshContainer(targets.ours);
    await container.items.batch([create('agg', 1, { n: 1 }), create('agg', 2, { n: 2 })], 'agg');
    const response = await container.items.batch(
      [
        { operationType: 'Upsert', resourceBody: { id: '1', a: 'agg', v: 1, n: 100 } },
        { operationType: 'Replace', id: '2', resourceBody: { id: '2', a: 'agg', v: 2, n: 200 } },
        { operationType: 'Delete', id: '1' },
        create('agg', 3),
        create('agg', 2),
      ],
      'agg',
    );
    expect(response.code).toBe(207);
    expect(response.result?.map((r) => r.statusCode)).toEqual([424, 424, 424, 424, 409]);
    const { resources } = await container.items.query<{ v: number; n?: number }>('SELECT c.v, c.n FROM c', { partitionKey: 'agg' }).fetchAll();
    expect(resources.sort((x, y) => x.v - y.v)).toEqual([
      { v: 1, n: 1 },
      { v: 2, n: 2 },
    ]);
  });
});

// --- (b) readers never see part of a batch --------------------------------------------------------

/**
 * One writer runs 200 atomic batches against a partition holding versions 1-3: every fourth appends the
 * next three versions, the others create two versions from 10,000 up and then fail on version 2. Two
 * readers poll the partition meanwhile. Every snapshot must be versions 1..m made of whole batches.
 */
async function readersDuringBatches(target: Target) {
  const container = await freshContainer(target);
  await container.items.batch([1, 2, 3].map((v) => create('agg', v)), 'agg');
  let next = 4;
  let failing = 10_000;
  let done = false;
  const partial: number[][] = [];
  let snapshots = 0;

  const isWholeBatches = (versions: number[]) =>
    (versions.length - 3) % 3 === 0 && versions.every((v, i) => v === i + 1);

  async function writer(): Promise<void> {
    try {
      for (let i = 0; i < 200; i++) {
        if (i % 4 === 0) {
          const response = await container.items.batch([next, next + 1, next + 2].map((v) => create('agg', v)), 'agg');
          expect(response.result?.map((r) => r.statusCode)).toEqual([201, 201, 201]);
          next += 3;
        } else {
          await container.items.batch([create('agg', failing), create('agg', failing + 1), create('agg', 2)], 'agg');
          failing += 2;
        }
      }
    } finally {
      done = true;
    }
  }

  async function reader(): Promise<void> {
    for (let i = 0; i < 1000 && !done; i++) {
      const versions = await versionsIn(container, 'agg');
      snapshots++;
      if (!isWholeBatches(versions) && partial.length < 3) partial.push(versions.filter((v) => v >= 10_000 || v > next + 2));
    }
  }

  await Promise.all([writer(), reader(), reader()]);
  const final = await versionsIn(container, 'agg');
  return { snapshots, partial, final: { wholeBatches: isWholeBatches(final), count: final.length } };
}

describe('concurrent readers never see part of a batch', () => {
  it('the bare server leaves failed batches half-applied for readers to see (the gap)', async () => {
    const observed = await readersDuringBatches(targets.bare);
    expect(observed.partial.length).toBeGreaterThan(0);
    expect(observed.final.wholeBatches).toBe(false);
  });

  it('the embedded server shows readers whole batches only', async () => {
    const observed = await readersDuringBatches(targets.ours);
    expect(observed.snapshots).toBeGreaterThan(10);
    expect(observed.partial).toEqual([]);
    expect(observed.final).toEqual({ wholeBatches: true, count: 3 + 50 * 3 });
  });
});

// --- (c) a partition-scoped query ----------------------------------------------------------------

async function partitionsSeen(target: Target): Promise<string[]> {
  const container = await freshContainer(target);
  await container.items.create({ id: '1', a: 'p1' });
  await container.items.create({ id: '2', a: 'p1' });
  await container.items.create({ id: '1', a: 'p2' });
  const { resources } = await container.items.query<{ a: string }>('SELECT * FROM c', { partitionKey: 'p1' }).fetchAll();
  return resources.map((d) => d.a).sort();
}

describe('a query given a partition key sees only that partition', () => {
  it('the bare server returns every partition (the gap)', async () => {
    expect(await partitionsSeen(targets.bare)).toEqual(['p1', 'p1', 'p2']);
  });

  it('the embedded server returns that partition only', async () => {
    expect(await partitionsSeen(targets.ours)).toEqual(['p1', 'p1']);
  });

  it('the embedded server still honours parameters, ORDER BY and page size in a scoped query', async () => {
    const container = await freshContainer(targets.ours);
    for (const v of [3, 1, 10, 2]) await container.items.create({ id: `${v}`, a: 'p', v });
    await container.items.create({ id: '5', a: 'q', v: 5 });
    const iterator = container.items.query<{ v: number }>(
      { query: 'SELECT c.v FROM c WHERE c.v >= @min ORDER BY c.v DESC', parameters: [{ name: '@min', value: 2 }] },
      { partitionKey: 'p', maxItemCount: 2 },
    );
    const first = await iterator.fetchNext();
    expect(first.resources.map((d) => d.v)).toEqual([10, 3]);
    const second = await iterator.fetchNext();
    expect(second.resources.map((d) => d.v)).toEqual([2]);
    expect(iterator.hasMoreResults()).toBe(false);
  });
});

// --- (d) the 2 MB limits -------------------------------------------------------------------------

/** Status codes of: create and upsert of a 2.1 MB item, and an atomic batch whose request is 2.2 MB. */
async function oversizeAnswers(target: Target) {
  const container = await freshContainer(target);
  const big = 'x'.repeat(Math.floor(2.1 * MiB));
  const status = (p: Promise<{ statusCode: number }>) =>
    p.then(
      (r) => r.statusCode,
      (err: { code?: number }) => err.code,
    );
  const createStatus = await status(container.items.create({ id: 'big', a: 'p', big }));
  const upsertStatus = await status(container.items.upsert({ id: 'big2', a: 'p', big }));
  const half = 'y'.repeat(Math.floor(1.1 * MiB));
  await container.items.batch([create('p', 1, { half }), create('p', 2, { half })], 'p').catch(() => undefined);
  const batchStatus = target.batchStatuses.at(-1);
  return { create: createStatus, upsert: upsertStatus, batch: batchStatus, stored: await versionsIn(container, 'p') };
}

describe('an item or a request over 2 MB is refused with 413', () => {
  it('the bare server accepts them (the gap)', async () => {
    const observed = await oversizeAnswers(targets.bare);
    expect(observed).toMatchObject({ create: 201, upsert: 201, batch: 200 });
    expect(observed.stored).toEqual([1, 2]);
  });

  it('the embedded server refuses them as Cosmos DB does, storing nothing', async () => {
    expect(await oversizeAnswers(targets.ours)).toEqual({ create: 413, upsert: 413, batch: 413, stored: [] });
  });

  it('the embedded server still accepts an item just under the limit', async () => {
    const container = await freshContainer(targets.ours);
    const { statusCode } = await container.items.create({ id: 'near', a: 'p', d: 'z'.repeat(Math.floor(1.9 * MiB)) });
    expect(statusCode).toBe(201);
  });
});

// --- (e) a batch is one logical partition ---------------------------------------------------------

/** A batch for partition "agg" whose second Create names partition "other". */
async function crossPartitionBatch(target: Target) {
  const container = await freshContainer(target);
  const response = await container.items.batch([create('agg', 1), create('other', 2)], 'agg');
  return {
    status: response.code,
    statuses: response.result?.map((r) => r.statusCode),
    stored: [...(await versionsIn(container, 'agg')), ...(await versionsIn(container, 'other'))],
  };
}

describe('an operation on another partition than its batch is refused', () => {
  it('the bare server writes it into the other partition (the gap)', async () => {
    expect((await crossPartitionBatch(targets.bare)).stored).toEqual([1, 2]);
  });

  it('the embedded server fails the batch with 400 on that operation and stores nothing', async () => {
    expect(await crossPartitionBatch(targets.ours)).toEqual({ status: 207, statuses: [424, 400], stored: [] });
  });

  it('the embedded server also refuses and rolls back an operation with a partition key it cannot read', async () => {
    const container = await freshContainer(targets.ours);
    const response = await container.items.batch(
      [create('agg', 1), { operationType: 'Read', id: '1', partitionKey: '{not json' } as OperationInput],
      'agg',
    );
    expect(response.result?.map((r) => r.statusCode)).toEqual([424, 400]);
    expect(await versionsIn(container, 'agg')).toEqual([]);
  });
});

// --- (f) an item ttl Cosmos DB refuses ------------------------------------------------------------

// ItemDefinition types ttl as a number: these are what a careless writer sends anyway.
const BAD_TTLS = [0, -2, 1.5, 2 ** 31, Number.MAX_SAFE_INTEGER, '60', null] as unknown as number[];

/** Status codes of create, upsert, replace and an atomic batch of items carrying each bad `ttl`. */
async function badTtlAnswers(target: Target) {
  const container = await freshContainer(target);
  const status = (p: Promise<{ statusCode: number }>) =>
    p.then(
      (r) => r.statusCode,
      (err: { code?: number }) => err.code,
    );
  await container.items.create({ id: 'kept', a: 'p', v: 0 });
  const answers = [];
  for (const [i, ttl] of BAD_TTLS.entries()) {
    const create = await status(container.items.create({ id: `c${i}`, a: 'p', ttl }));
    const upsert = await status(container.items.upsert({ id: `u${i}`, a: 'p', ttl }));
    const replace = await status(container.item('kept', 'p').replace({ id: 'kept', a: 'p', v: i + 1, ttl }));
    const batch = await container.items.batch([{ operationType: 'Create', resourceBody: { id: `b${i}`, a: 'p', ttl } }], 'p');
    answers.push({ create, upsert, replace, batch: batch.result?.[0]?.statusCode });
  }
  const { resources } = await container.items.query('SELECT c.id FROM c').fetchAll();
  return { answers, stored: resources.map((d) => d.id as string).sort() };
}

describe('an item ttl outside -1 and 1 to 2^31-1 is refused with 400', () => {
  it('the bare server stores it (the gap)', async () => {
    const { answers } = await badTtlAnswers(targets.bare);
    expect(answers.every((a) => a.create === 201 && a.upsert === 201)).toBe(true);
  });

  it('the embedded server refuses it as Cosmos DB does, storing nothing', async () => {
    const refused = { create: 400, upsert: 400, replace: 400, batch: 400 };
    expect(await badTtlAnswers(targets.ours)).toEqual({ answers: BAD_TTLS.map(() => refused), stored: ['kept'] });
  });

  it('the embedded server accepts -1, 1 and 2^31-1', async () => {
    const container = await freshContainer(targets.ours);
    for (const ttl of [-1, 1, 2 ** 31 - 1]) {
      expect((await container.items.create({ id: `ok${ttl}`, a: 'p', ttl })).statusCode).toBe(201);
    }
  });
});

// --- (g) a patch condition --------------------------------------------------------------------------

/**
 * Statuses of conditional patches of item `x` in partition p1 (v 1, name 'Tea') while an item of the same id
 * in p2 has v 9: a condition true only in p2, then one true only with the literal's case kept.
 */
async function conditionalPatchAnswers(target: Target) {
  const container = await freshContainer(target);
  await container.items.create({ id: 'x', a: 'p1', v: 1, name: 'Tea' });
  await container.items.create({ id: 'x', a: 'p2', v: 9, name: 'Cake' });
  const status = (condition: string, v: number) =>
    container
      .item('x', 'p1')
      .patch({ condition, operations: [{ op: 'set', path: '/v', value: v }] })
      .then(
        (r) => r.statusCode,
        (err: { code?: number }) => err.code,
      );
  const otherPartition = await status('FROM c WHERE c.v > 5', 2);
  const caseKept = await status("FROM c WHERE c.name = 'Tea'", 3);
  const { resource } = await container.item('x', 'p1').read<{ v: number }>();
  return { otherPartition, caseKept, v: resource?.v };
}

describe('a conditional patch checks its condition on the addressed item, as written', () => {
  it('the bare server lets an item of the same id in another partition satisfy it, and lowercases it (the gap)', async () => {
    expect(await conditionalPatchAnswers(targets.bare)).toEqual({ otherPartition: 200, caseKept: 412, v: 2 });
  });

  it('the embedded server answers 412 for a condition false on the item, and applies one true on it', async () => {
    expect(await conditionalPatchAnswers(targets.ours)).toEqual({ otherPartition: 412, caseKept: 200, v: 3 });
  });

  it('the embedded server answers 404 for a missing item and 400 for a condition it cannot parse', async () => {
    const container = await freshContainer(targets.ours);
    await container.items.create({ id: 'x', a: 'p1', v: 1 });
    const status = (id: string, condition: string) =>
      container
        .item(id, 'p1')
        .patch({ condition, operations: [{ op: 'set', path: '/v', value: 2 }] })
        .then(
          (r) => r.statusCode,
          (err: { code?: number }) => err.code,
        );
    expect(await status('missing', 'FROM c WHERE c.v = 1')).toBe(404);
    expect(await status('x', 'FROM c WHERE (')).toBe(400);
    expect(await status('x', 'FROM c WHERE NOT IS_DEFINED(c.t) AND c.v < 2')).toBe(200);
    // A ttl Cosmos DB refuses is refused in a patch too.
    const ttl = await container
      .item('x', 'p1')
      .patch([{ op: 'set', path: '/ttl', value: 0 }])
      .then(
        (r) => r.statusCode,
        (err: { code?: number }) => err.code,
      );
    expect(ttl).toBe(400);
  });
});

// --- what must still work ------------------------------------------------------------------------

describe('behaviour the embedded server keeps from the library', () => {
  it.each(['bare', 'ours'] as const)('%s: a successful atomic batch answers 200 with a 201 per Create', async (name) => {
    const container = await freshContainer(targets[name]);
    const response = await container.items.batch([1, 2, 3].map((v) => create('agg', v)), 'agg');
    expect(response.code).toBe(200);
    expect(response.result?.map((r) => r.statusCode)).toEqual([201, 201, 201]);
    expect(response.result?.map((r) => (r.resourceBody as { id?: string } | undefined)?.id)).toEqual(['1', '2', '3']);
    expect(await versionsIn(container, 'agg')).toEqual([1, 2, 3]);
  });

  it.each(['bare', 'ours'] as const)('%s: a non-atomic bulk request applies what it can, undoing nothing', async (name) => {
    const container = await freshContainer(targets[name]);
    await container.items.create({ id: '1', a: 'agg', v: 1 });
    const results = await container.items.executeBulkOperations(
      [10, 1, 11].map((v) => ({ operationType: 'Create' as const, partitionKey: 'agg', resourceBody: { id: String(v), a: 'agg', v } })),
    );
    expect(results.map((r) => r.response?.statusCode ?? r.error?.code)).toEqual([201, 409, 201]);
    expect(await versionsIn(container, 'agg')).toEqual([1, 10, 11]);
  });

  it('the embedded server advertises its own http endpoint, so a default client needs no options', async () => {
    const { resource } = await targets.ours.client.getDatabaseAccount();
    const endpoints = [...(resource?.writableLocations ?? []), ...(resource?.readableLocations ?? [])].map(
      (l) => l.databaseAccountEndpoint,
    );
    expect(endpoints.length).toBeGreaterThan(0);
    for (const endpoint of endpoints) expect(endpoint).toBe(`${ours.endpoint}/`);
  });
});
