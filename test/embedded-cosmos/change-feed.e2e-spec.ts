/*
 * The embedded server's change feed, checked through @azure/cosmos's pull model against what the Cosmos DB
 * documentation promises for latest-version mode: per partition key range, changes in commit order; each
 * item's latest version only; no deletes; a continuation that resumes exactly; 304 when nothing is new;
 * the items of one transaction on one page even past maxItemCount. The bare @vercel/cosmosdb-server is
 * shown failing the incremental part (the gap this closes).
 */
import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ChangeFeedStartFrom,
  CosmosClient,
  type ChangeFeedIteratorResponse,
  type ChangeFeedPullModelIterator,
  type Container,
  type FeedRange,
  type OperationInput,
} from '@azure/cosmos';
import { startEmbeddedCosmos, type EmbeddedCosmos } from '../../src/testing.js';

const require = createRequire(import.meta.url);
const { createHttpServer } = require('@vercel/cosmosdb-server') as { createHttpServer: () => Server };

interface Doc {
  id: string;
  a: string;
  v: number;
  n?: number;
  _lsn: number;
}

let single: EmbeddedCosmos;
let multi: EmbeddedCosmos;
let singleClient: CosmosClient;
let multiClient: CosmosClient;

beforeAll(async () => {
  single = await startEmbeddedCosmos();
  multi = await startEmbeddedCosmos({ partitionKeyRanges: 4 });
  singleClient = new CosmosClient({ endpoint: single.endpoint, key: single.key });
  multiClient = new CosmosClient({ endpoint: multi.endpoint, key: multi.key });
});

afterAll(async () => {
  singleClient?.dispose();
  multiClient?.dispose();
  await single?.close();
  await multi?.close();
});

async function freshContainer(client: CosmosClient): Promise<Container> {
  const { database } = await client.databases.createIfNotExists({ id: 'feed' });
  const { container } = await database.containers.createIfNotExists({
    id: `c-${randomUUID()}`,
    partitionKey: { paths: ['/a'], version: 2 },
  });
  return container;
}

const event = (a: string, v: number, extra: Record<string, unknown> = {}) => ({ id: String(v), a, v, ...extra });
const create = (a: string, v: number): OperationInput => ({ operationType: 'Create', resourceBody: event(a, v) });
const tags = (page: ChangeFeedIteratorResponse<Doc[]>) => page.result.map((d) => `${d.a}/${d.v}`);

/** Reads pages until a 304, returning every page's items. */
async function drain(iterator: ChangeFeedPullModelIterator<Doc>): Promise<Doc[][]> {
  const pages: Doc[][] = [];
  for (;;) {
    const page = await iterator.readNext();
    if (page.statusCode === 304) return pages;
    expect(page.statusCode).toBe(200);
    pages.push(page.result);
  }
}

describe('latest-version change feed of the embedded server', () => {
  let container: Container;
  beforeEach(async () => {
    container = await freshContainer(singleClient);
  });

  it('starts at the beginning, answers 304 when nothing is new, and picks up later writes', async () => {
    const iterator = container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning() });
    const empty = await iterator.readNext();
    expect(empty.statusCode).toBe(304);
    expect(empty.result).toEqual([]);
    for (let v = 1; v <= 3; v++) await container.items.create(event('a', v));
    const first = await iterator.readNext();
    expect(first.statusCode).toBe(200);
    expect(tags(first)).toEqual(['a/1', 'a/2', 'a/3']);
    expect((await iterator.readNext()).statusCode).toBe(304);
    await container.items.create(event('a', 4));
    const next = await iterator.readNext();
    expect(tags(next)).toEqual(['a/4']);
    expect((await iterator.readNext()).statusCode).toBe(304);
  });

  it('orders the changes of a range by commit, across partition key values', async () => {
    for (const [a, v] of [['a', 1], ['b', 1], ['a', 2], ['c', 1], ['b', 2]] as const) {
      await container.items.create(event(a, v));
    }
    const iterator = container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning() });
    const [page] = await drain(iterator);
    expect(page.map((d) => `${d.a}/${d.v}`)).toEqual(['a/1', 'b/1', 'a/2', 'c/1', 'b/2']);
    const lsns = page.map((d) => d._lsn);
    expect(lsns).toEqual([...lsns].sort((x, y) => x - y));
    expect(new Set(lsns).size).toBe(5);
  });

  it('pages by maxItemCount with a continuation token that a new iterator resumes from exactly', async () => {
    for (let v = 1; v <= 7; v++) await container.items.create(event('a', v));
    const first = container.items.getChangeFeedIterator<Doc>({
      changeFeedStartFrom: ChangeFeedStartFrom.Beginning(),
      maxItemCount: 3,
    });
    const page = await first.readNext();
    expect(tags(page)).toEqual(['a/1', 'a/2', 'a/3']);
    // The shape the SDK writes and parses back: the container's rid and one continuation per range.
    const token = JSON.parse(page.continuationToken) as { rid: string; Continuation: Array<Record<string, string>> };
    const { resource } = await container.read();
    expect(token.rid).toBe(resource?._rid);
    expect(token.Continuation).toEqual([{ minInclusive: '', maxExclusive: 'FF', continuationToken: expect.any(String) }]);

    const resumed = container.items.getChangeFeedIterator<Doc>({
      changeFeedStartFrom: ChangeFeedStartFrom.Continuation(page.continuationToken),
      maxItemCount: 3,
    });
    const rest = await drain(resumed);
    expect(rest.map((p) => p.map((d) => d.v))).toEqual([[4, 5, 6], [7]]);
    // The old iterator's token is not consumed by the new one: it resumes at the same place again.
    expect((await first.readNext()).result.map((d) => d.v)).toEqual([4, 5, 6]);
  });

  it('shows an item updated before it is read once, in its latest version, and again after a later update', async () => {
    await container.items.create(event('a', 1, { n: 1 }));
    await container.items.create(event('b', 1));
    await container.items.upsert(event('a', 1, { n: 2 }));
    await container.item('1', 'a').replace(event('a', 1, { n: 3 }));
    const iterator = container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning() });
    const [page] = await drain(iterator);
    // The update moved a/1 behind b/1: its latest write is the later commit.
    expect(page.map((d) => [d.a, d.n ?? null])).toEqual([['b', null], ['a', 3]]);
    await container.items.upsert(event('a', 1, { n: 4 }));
    expect((await drain(iterator)).flat().map((d) => d.n)).toEqual([4]);
  });

  it('leaves deletes out: an item deleted before it is read is not in the feed, a later delete adds nothing', async () => {
    await container.items.create(event('a', 1));
    await container.items.create(event('a', 2));
    await container.item('1', 'a').delete();
    const iterator = container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning() });
    expect((await drain(iterator)).flat().map((d) => d.v)).toEqual([2]);
    await container.item('2', 'a').delete();
    expect((await iterator.readNext()).statusCode).toBe(304);
  });

  it('hands out the items of a transactional batch together on one page, even past maxItemCount', async () => {
    await container.items.create(event('a', 1));
    await container.items.batch([2, 3, 4, 5, 6, 7].map((v) => create('a', v)), 'a');
    await container.items.create(event('a', 8));
    const iterator = container.items.getChangeFeedIterator<Doc>({
      changeFeedStartFrom: ChangeFeedStartFrom.Beginning(),
      maxItemCount: 2,
    });
    const pages = await drain(iterator);
    expect(pages.map((p) => p.length)).toEqual([7, 1]);
    const batch = pages[0].slice(1);
    expect(new Set(batch.map((d) => d._lsn)).size).toBe(1);
    expect(batch.map((d) => d.v).sort((x, y) => x - y)).toEqual([2, 3, 4, 5, 6, 7]);
    // Cosmos DB promises no order inside a transaction; the embedded server does not keep write order.
    expect(batch.map((d) => d.v)).not.toEqual([2, 3, 4, 5, 6, 7]);
  });

  it('leaves no trace of a transactional batch that rolled back', async () => {
    await container.items.create(event('a', 3));
    const iterator = container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning() });
    await drain(iterator);
    const response = await container.items.batch([1, 2, 3].map((v) => create('a', v)), 'a');
    expect(response.result?.map((r) => r.statusCode)).toEqual([424, 424, 409]);
    expect((await iterator.readNext()).statusCode).toBe(304);
  });

  it('starts from now: changes before the first answer are not shown, later ones are', async () => {
    await container.items.create(event('a', 1));
    const iterator = container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Now() });
    expect((await iterator.readNext()).statusCode).toBe(304);
    await container.items.create(event('a', 2));
    expect((await drain(iterator)).flat().map((d) => d.v)).toEqual([2]);
  });

  it('starts from a point in time: only changes committed from then on', async () => {
    await container.items.create(event('a', 1));
    // The SDK sends the time with whole seconds (If-Modified-Since): start on a fresh second.
    await new Promise((resolve) => setTimeout(resolve, 1_005 - (Date.now() % 1_000)));
    const from = new Date();
    await container.items.create(event('a', 2));
    const iterator = container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Time(from) });
    expect((await drain(iterator)).flat().map((d) => d.v)).toEqual([2]);
    await container.items.create(event('a', 3));
    expect((await drain(iterator)).flat().map((d) => d.v)).toEqual([3]);
  });

  it('reads the changes of one partition key value only, and resumes from its own continuation', async () => {
    for (const [a, v] of [['a', 1], ['b', 1], ['a', 2], ['b', 2]] as const) await container.items.create(event(a, v));
    const iterator = container.items.getChangeFeedIterator<Doc>({
      changeFeedStartFrom: ChangeFeedStartFrom.Beginning('a'),
      maxItemCount: 1,
    });
    const page = await iterator.readNext();
    expect(tags(page)).toEqual(['a/1']);
    const resumed = container.items.getChangeFeedIterator<Doc>({
      changeFeedStartFrom: ChangeFeedStartFrom.Continuation(page.continuationToken),
    });
    await container.items.create(event('b', 3));
    await container.items.create(event('a', 3));
    expect((await drain(resumed)).flat().map((d) => `${d.a}/${d.v}`)).toEqual(['a/2', 'a/3']);
  });

  it('tells how far behind a reader is: the session token carries the range LSN, items their _lsn', async () => {
    for (let v = 1; v <= 5; v++) await container.items.create(event('a', v));
    const iterator = container.items.getChangeFeedIterator<Doc>({
      changeFeedStartFrom: ChangeFeedStartFrom.Beginning(),
      maxItemCount: 2,
    });
    const page = await iterator.readNext();
    const latest = Number(page.sessionToken?.split('#').at(-1));
    expect(latest).toBe(5);
    expect(latest - page.result.at(-1)!._lsn).toBe(3);
  });

  it('loses nothing and repeats nothing while writers commit between pages', async () => {
    const iterator = container.items.getChangeFeedIterator<Doc>({
      changeFeedStartFrom: ChangeFeedStartFrom.Beginning(),
      maxItemCount: 7,
    });
    const seen: Doc[] = [];
    let writing = true;
    const writers = Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        for (let v = 1; v <= 15; v += 3) await container.items.batch([v, v + 1, v + 2].map((x) => create(`w${w}`, x)), `w${w}`);
      }),
    ).finally(() => (writing = false));
    while (writing || seen.length < 8 * 15) {
      const page = await iterator.readNext();
      seen.push(...page.result);
      if (!writing && page.statusCode === 304) break;
    }
    await writers;
    expect(seen).toHaveLength(8 * 15);
    for (let w = 0; w < 8; w++) {
      const versions = seen.filter((d) => d.a === `w${w}`).map((d) => d.v);
      // Batches arrive in commit order; inside one, any order.
      const batches = [0, 1, 2, 3, 4].map((b) => versions.slice(b * 3, b * 3 + 3).sort((x, y) => x - y));
      expect(batches.flat()).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    }
  });
});

describe('partition key ranges of the embedded server', () => {
  let container: Container;
  beforeAll(async () => {
    container = await freshContainer(multiClient);
    for (let i = 0; i < 40; i++) {
      await container.items.batch([create(`agg-${i}`, 1), create(`agg-${i}`, 2)], `agg-${i}`);
    }
  });

  it('lists contiguous feed ranges covering the whole key space', async () => {
    const ranges = (await container.getFeedRanges()) as unknown as Array<{ minInclusive: string; maxExclusive: string }>;
    expect(ranges).toHaveLength(4);
    expect(ranges[0].minInclusive).toBe('');
    expect(ranges.at(-1)!.maxExclusive).toBe('FF');
    for (let i = 1; i < ranges.length; i++) expect(ranges[i].minInclusive).toBe(ranges[i - 1].maxExclusive);
  });

  it('splits the feed between the ranges: every item in exactly one, each partition key in one range', async () => {
    const ranges = await container.getFeedRanges();
    const perRange = await Promise.all(
      ranges.map(async (range: FeedRange) => {
        const iterator = container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning(range) });
        return (await drain(iterator)).flat();
      }),
    );
    for (const items of perRange) expect(items.length).toBeGreaterThan(0);
    const all = perRange.flat().map((d) => `${d.a}/${d.v}`);
    expect(new Set(all).size).toBe(80);
    expect(all).toHaveLength(80);
    const rangeOf = new Map<string, number>();
    perRange.forEach((items, r) =>
      items.forEach((d) => {
        expect(rangeOf.get(d.a) ?? r).toBe(r);
        rangeOf.set(d.a, r);
      }),
    );
  });

  it('keeps one LSN sequence per range and resumes one range from its continuation', async () => {
    const [range] = await container.getFeedRanges();
    const iterator = container.items.getChangeFeedIterator<Doc>({
      changeFeedStartFrom: ChangeFeedStartFrom.Beginning(range),
      maxItemCount: 1,
    });
    const page = await iterator.readNext();
    // One batch: two items, one LSN, the first of this range.
    expect(page.result.map((d) => d._lsn)).toEqual([1, 1]);
    const token = JSON.parse(page.continuationToken) as { Continuation: unknown[] };
    expect(token.Continuation).toHaveLength(1);
    const resumed = container.items.getChangeFeedIterator<Doc>({
      changeFeedStartFrom: ChangeFeedStartFrom.Continuation(page.continuationToken),
    });
    const rest = (await drain(resumed)).flat();
    expect(rest.every((d) => d._lsn > 1)).toBe(true);
  });

  it('reads part of a range by effective partition key, as the SDK asks for a feed range narrower than a partition', async () => {
    const [first] = await container.getFeedRanges();
    // @azure/cosmos builds narrower ranges only internally; take its class from a range it handed out.
    const FeedRangeClass = first.constructor as new (min: string, max: string) => FeedRange;
    const middle = '08000000000000000000000000000000';
    const read = async (range: FeedRange) => {
      const iterator = container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning(range) });
      return (await drain(iterator)).flat().map((d) => `${d.a}/${d.v}`);
    };
    const whole = await read(first);
    const low = await read(new FeedRangeClass(first.minInclusive, middle));
    const high = await read(new FeedRangeClass(middle, first.maxExclusive));
    expect([...low, ...high].sort()).toEqual([...whole].sort());
    expect(low.length).toBeGreaterThan(0);
    expect(high.length).toBeGreaterThan(0);
  });

  it('reads the whole container through one iterator over every range', async () => {
    const iterator = container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning() });
    const all = (await drain(iterator)).flat();
    expect(new Set(all.map((d) => `${d.a}/${d.v}`)).size).toBe(80);
  });

  it('refuses a range count it cannot have', async () => {
    await expect(startEmbeddedCosmos({ partitionKeyRanges: 0 })).rejects.toThrow(/partitionKeyRanges/);
  });
});

describe('the gap in @vercel/cosmosdb-server', () => {
  let bare: Server;
  let client: CosmosClient;
  beforeAll(async () => {
    bare = createHttpServer();
    await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve));
    const { port } = bare.address() as AddressInfo;
    client = new CosmosClient({
      endpoint: `http://127.0.0.1:${port}`,
      key: single.key,
      connectionPolicy: { enableEndpointDiscovery: false },
    });
  });
  afterAll(async () => {
    client?.dispose();
    await new Promise<void>((resolve) => {
      bare?.close(() => resolve());
      bare?.closeAllConnections();
    });
  });

  it('never shows a write made after the first read (ours does)', async () => {
    for (const [target, expected] of [
      [client, 304],
      [singleClient, 200],
    ] as const) {
      const container = await freshContainer(target);
      await container.items.create(event('a', 1));
      const iterator = container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning() });
      expect((await iterator.readNext()).statusCode).toBe(200);
      await container.items.create(event('a', 2));
      expect((await iterator.readNext()).statusCode).toBe(expected);
    }
  });
});
