/*
 * The containers' index policies, read back from the (embedded) server: containers `ensureContainers`
 * creates index only what the queries use, payloads left out; containers that already exist (as Go's
 * protosource creates them, index-everything) are kept as they are unless asked, and `applyIndexingPolicy`
 * brings them over.
 */
import { CosmosClient, type Container, type IndexingPolicy } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import { jest } from '@jest/globals';
import {
  AGGREGATES_INDEXING_POLICY,
  applyIndexingPolicy,
  CosmosEventStore,
  ensureContainers,
  ensureDatabase,
  EVENTS_INDEXING_POLICY,
} from '../../src/index.js';
import { startEmbeddedCosmos, type EmbeddedCosmos } from '../../src/testing.js';

let cosmos: EmbeddedCosmos;
let client: CosmosClient;

beforeAll(async () => {
  cosmos = await startEmbeddedCosmos();
  client = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key });
});
afterAll(async () => {
  client?.dispose();
  await cosmos?.close();
});

async function policyOf(container: Container): Promise<IndexingPolicy> {
  const { resource } = await container.read();
  return resource!.indexingPolicy!;
}

const paths = (list: Array<{ path: string }> | undefined) => (list ?? []).map((p) => p.path).sort();

it('creates the events container indexing a, v, t, y and _ts only, the payload d left out', async () => {
  const database = await ensureDatabase(client, `idx-${randomUUID()}`);
  await ensureContainers(database);
  const events = await policyOf(database.container('events'));
  expect(paths(events.includedPaths)).toEqual(['/_ts/?', '/a/?', '/t/?', '/v/?', '/y/?']);
  expect(paths(events.excludedPaths)).toContain('/*');
  expect(paths(events.includedPaths).some((p) => p.startsWith('/d'))).toBe(false);
  const aggregates = await policyOf(database.container('aggregates'));
  expect(paths(aggregates.includedPaths)).toEqual(paths(AGGREGATES_INDEXING_POLICY.includedPaths));
  expect(paths(aggregates.includedPaths)).toEqual(expect.arrayContaining(['/pk/?', '/sk/?', '/t/?', '/gsi1pk/?', '/gsi20sk/?']));
  expect(paths(aggregates.includedPaths).some((p) => p.startsWith('/body'))).toBe(false);
  // The store works on it, every read and readAll included.
  const store = new CosmosEventStore(database.container('events'));
  await store.save('Idx/1', [{ version: 1, data: new Uint8Array([1]), type: 'T' }]);
  expect((await store.load('Idx/1')).records).toHaveLength(1);
  const all = [];
  // readAll hands out only commit seconds that are over (readAllSettleSeconds, default 2): read as if 3 s later.
  const realNow = Date.now.bind(Date);
  const clock = jest.spyOn(Date, 'now').mockImplementation(() => realNow() + 3_000);
  try {
    for await (const item of store.readAll({ types: ['T'] })) all.push(item);
  } finally {
    clock.mockRestore();
  }
  expect(all).toHaveLength(1);
});

it('keeps an existing container’s policy unless asked, and applies it on request, once', async () => {
  const database = await ensureDatabase(client, `idx-${randomUUID()}`);
  // As Go's EnsureContainers creates it: no policy given, the service default (every path indexed).
  await database.containers.create({ id: 'events', partitionKey: { paths: ['/a'] } });
  const before = await policyOf(database.container('events'));
  await ensureContainers(database);
  expect(await policyOf(database.container('events'))).toEqual(before);

  expect(await applyIndexingPolicy(database.container('events'), EVENTS_INDEXING_POLICY)).toBe(true);
  expect(paths((await policyOf(database.container('events'))).includedPaths)).toEqual(paths(EVENTS_INDEXING_POLICY.includedPaths));
  // The rest of the definition is kept.
  expect((await database.container('events').read()).resource!.partitionKey!.paths).toEqual(['/a']);
  expect(await applyIndexingPolicy(database.container('events'), EVENTS_INDEXING_POLICY)).toBe(false);
});

it('ensureContainers({ applyIndexingPolicy: true }) brings existing containers over', async () => {
  const database = await ensureDatabase(client, `idx-${randomUUID()}`);
  await database.containers.create({ id: 'events', partitionKey: { paths: ['/a'] } });
  await database.containers.create({ id: 'aggregates', partitionKey: { paths: ['/pk'] } });
  await ensureContainers(database, 'events', 'aggregates', { applyIndexingPolicy: true });
  expect(paths((await policyOf(database.container('events'))).includedPaths)).toEqual(paths(EVENTS_INDEXING_POLICY.includedPaths));
  expect(paths((await policyOf(database.container('aggregates'))).includedPaths)).toEqual(
    paths(AGGREGATES_INDEXING_POLICY.includedPaths),
  );
});
