/*
 * A physical partition of the embedded server split while clients are reading, checked through @azure/cosmos
 * against what Cosmos DB does on a split: the parent leaves the partition key range listing and two children
 * naming it in `parents` take its halves; a request for the parent is answered 410 Gone / 1002, after which
 * the SDK's change feed re-reads the ranges and goes on with each child from the parent's continuation. Change
 * feed readers started before the split, and continuations stored before it, must lose and repeat nothing
 * and keep each partition key's changes in order; point operations, batches and queries go on working.
 */
import { randomUUID } from 'node:crypto';
import {
  ChangeFeedStartFrom,
  CosmosClient,
  type ChangeFeedPullModelIterator,
  type Container,
  type FeedRange,
  type OperationInput,
  type PluginConfig,
} from '@azure/cosmos';
import { startEmbeddedCosmos, type EmbeddedCosmos } from '../../src/testing.js';
import { clientWithPlugins } from '../support/cosmos.js';

interface Doc {
  id: string;
  a: string;
  v: number;
  _lsn: number;
}

interface ListedRange {
  id: string;
  minInclusive: string;
  maxExclusive: string;
  parents: string[];
}

const DATABASE = 'split';
const KEYS = Array.from({ length: 24 }, (_, i) => `agg-${i}`);

let cosmos: EmbeddedCosmos;
let client: CosmosClient;
/** Status and sub-status of every change feed answer the client got. */
const feedAnswers: string[] = [];

beforeAll(async () => {
  cosmos = await startEmbeddedCosmos({ partitionKeyRanges: 2 });
  const record: PluginConfig = {
    on: 'request',
    plugin: async (context, diagnostics, next) => {
      const changeFeed = context.headers?.['A-IM'] !== undefined;
      try {
        const response = await next(context);
        if (changeFeed) feedAnswers.push(String(response.code));
        return response;
      } catch (err) {
        const { code, substatus } = err as { code?: number; substatus?: number };
        if (changeFeed) feedAnswers.push(`${code}/${substatus}`);
        throw err;
      }
    },
  };
  client = clientWithPlugins({ endpoint: cosmos.endpoint, key: cosmos.key }, [record]);
});

afterAll(async () => {
  client?.dispose();
  await cosmos?.close();
});

beforeEach(() => {
  feedAnswers.length = 0;
});

async function freshContainer(): Promise<Container> {
  const { database } = await client.databases.createIfNotExists({ id: DATABASE });
  const { container } = await database.containers.createIfNotExists({
    id: `c-${randomUUID()}`,
    partitionKey: { paths: ['/a'], version: 2 },
  });
  return container;
}

const event = (a: string, v: number) => ({ id: String(v), a, v });
const create = (a: string, v: number): OperationInput => ({ operationType: 'Create', resourceBody: event(a, v) });

/** Versions `from`..`to` of every key, a transactional batch of two per key and step. */
async function write(container: Container, from: number, to: number): Promise<void> {
  for (let v = from; v <= to; v += 2) {
    await Promise.all(
      KEYS.map((a) => container.items.batch([create(a, v), ...(v + 1 <= to ? [create(a, v + 1)] : [])], a)),
    );
  }
}

async function listed(container: Container): Promise<ListedRange[]> {
  const { resources } = await container.readPartitionKeyRanges().fetchAll();
  return resources as unknown as ListedRange[];
}

/** Reads pages until a 304. */
async function drain(iterator: ChangeFeedPullModelIterator<Doc>): Promise<Doc[]> {
  const items: Doc[] = [];
  for (;;) {
    const page = await iterator.readNext();
    if (page.statusCode === 304) return items;
    expect(page.statusCode).toBe(200);
    items.push(...page.result);
  }
}

/**
 * Every version 1..`count` of each key exactly once, and each key's changes in commit order: LSNs never go
 * back (the children go on with the parent's sequence) and, taken in that order, versions ascend, except inside
 * one commit (a transactional batch), whose items come in no particular order.
 */
function expectEachOnceInOrder(items: Doc[], keys: string[], count: number): void {
  const tags = items.map((d) => `${d.a}/${d.v}`);
  expect(new Set(tags).size).toBe(tags.length);
  for (const a of keys) {
    const mine = items.filter((d) => d.a === a);
    const lsns = mine.map((d) => d._lsn);
    expect(lsns).toEqual([...lsns].sort((x, y) => x - y));
    const versions = mine.map((d) => ({ v: d.v, lsn: d._lsn })).sort((x, y) => x.lsn - y.lsn || x.v - y.v);
    expect(versions.map((d) => d.v)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
  }
}

describe('splitting a partition of the embedded server', () => {
  it('replaces the range in the listing by two children that name it as parent and cover its halves', async () => {
    const container = await freshContainer();
    await write(container, 1, 2);
    const before = await listed(container);
    expect(before.map((r) => r.id)).toEqual(['0', '1']);

    const { parent, children } = cosmos.splitPartition(DATABASE, container.id, '1');
    const after = await listed(container);
    expect(parent).toEqual({ id: '1', minInclusive: before[1].minInclusive, maxExclusive: 'FF' });
    expect(after.map((r) => [r.id, r.parents])).toEqual([
      ['0', []],
      ['2', ['1']],
      ['3', ['1']],
    ]);
    expect(after.slice(1).map(({ id, minInclusive, maxExclusive }) => ({ id, minInclusive, maxExclusive }))).toEqual(children);
    expect(after[1].minInclusive).toBe(parent.minInclusive);
    expect(after[1].maxExclusive).toBe(after[2].minInclusive);
    expect(after[2].maxExclusive).toBe('FF');
    expect(await container.getFeedRanges()).toHaveLength(3);

    // A child splits again; its children list the whole lineage, as Cosmos DB's do.
    cosmos.splitPartition(DATABASE, container.id, '2');
    expect((await listed(container)).map((r) => [r.id, r.parents])).toEqual([
      ['0', []],
      ['4', ['1', '2']],
      ['5', ['1', '2']],
      ['3', ['1']],
    ]);
  });

  it('splits the range holding the most documents when none is named, and refuses what it cannot split', async () => {
    const container = await freshContainer();
    await write(container, 1, 2);
    const ranges = await container.getFeedRanges();
    const sizes = await Promise.all(
      ranges.map(async (range) => (await drain(container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning(range) }))).length),
    );
    const { parent } = cosmos.splitPartition(DATABASE, container.id);
    expect(parent.id).toBe(String(sizes.indexOf(Math.max(...sizes))));
    expect(() => cosmos.splitPartition(DATABASE, container.id, parent.id)).toThrow(/no partition key range/);
    expect(() => cosmos.splitPartition(DATABASE, 'missing', '0')).toThrow(/no container/);
  });

  it('lets a whole-container change feed iterator started before the split go on: every change once, in order per key', async () => {
    const container = await freshContainer();
    await write(container, 1, 6);
    const iterator = container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning(), maxItemCount: 10 });
    // Part of each range read, the rest left in the parent for the children to hand out.
    const seen: Doc[] = [...(await iterator.readNext()).result, ...(await iterator.readNext()).result];
    expect(seen.length).toBeGreaterThan(0);

    cosmos.splitPartition(DATABASE, container.id, '0');
    cosmos.splitPartition(DATABASE, container.id, '1');
    await write(container, 7, 10);
    seen.push(...(await drain(iterator)));

    expectEachOnceInOrder(seen, KEYS, 10);
    // It got there through the Gone answers, as against Cosmos DB, not through a listing read afresh.
    expect(feedAnswers).toContain('410/1002');
    await write(container, 11, 12);
    expectEachOnceInOrder([...seen, ...(await drain(iterator))], KEYS, 12);
  });

  it('lets an iterator over the feed range that splits go on across the split, reading both children', async () => {
    const container = await freshContainer();
    await write(container, 1, 6);
    const [range] = await container.getFeedRanges();
    const keysIn = async (feedRange: FeedRange) =>
      new Set((await drain(container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning(feedRange) }))).map((d) => d.a));
    const keys = [...(await keysIn(range))];
    const iterator = container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning(range), maxItemCount: 5 });
    const seen: Doc[] = [...(await iterator.readNext()).result];

    cosmos.splitPartition(DATABASE, container.id, '0');
    await write(container, 7, 8);
    seen.push(...(await drain(iterator)));

    expectEachOnceInOrder(seen, keys, 8);
    expect(feedAnswers).toContain('410/1002');
    // Both halves hold some of the keys, so both children were read.
    const children = (await container.getFeedRanges()).slice(0, 2);
    for (const child of children) expect((await keysIn(child)).size).toBeGreaterThan(0);
  });

  it('resumes from a continuation stored before the split, on a client that has never seen the parent too', async () => {
    const container = await freshContainer();
    await write(container, 1, 4);
    const iterator = container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning(), maxItemCount: 10 });
    const first = await iterator.readNext();
    const second = await iterator.readNext();
    const stored = second.continuationToken;
    const read = [...first.result, ...second.result];

    cosmos.splitPartition(DATABASE, container.id, '0');
    await write(container, 5, 6);
    const resumed = await drain(container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Continuation(stored) }));
    expectEachOnceInOrder([...read, ...resumed], KEYS, 6);

    const other = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key });
    try {
      const elsewhere = other.database(DATABASE).container(container.id);
      const fresh = await drain(elsewhere.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Continuation(stored) }));
      expect(fresh.map((d) => `${d.a}/${d.v}`).sort()).toEqual(resumed.map((d) => `${d.a}/${d.v}`).sort());
    } finally {
      other.dispose();
    }
  });

  it('keeps point operations, transactional batches and partition key queries working on the children', async () => {
    const container = await freshContainer();
    await write(container, 1, 2);
    cosmos.splitPartition(DATABASE, container.id, '0');
    cosmos.splitPartition(DATABASE, container.id, '1');
    for (const a of KEYS) {
      const { resource } = await container.item('1', a).read<Doc>();
      expect(resource?.v).toBe(1);
      const batch = await container.items.batch([create(a, 3), create(a, 2)], a);
      // Still all-or-nothing: version 2 exists, so version 3 is not written either.
      expect(batch.result?.map((r) => r.statusCode)).toEqual([424, 409]);
      await container.items.create(event(a, 3));
      const { resources } = await container.items
        .query<Doc>({ query: 'SELECT * FROM c ORDER BY c.v', parameters: [] }, { partitionKey: a })
        .fetchAll();
      expect(resources.map((d) => d.v)).toEqual([1, 2, 3]);
    }
    const all = await drain(container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning() }));
    expectEachOnceInOrder(all, KEYS, 3);
  });
});
