/*
 * Subscriptions across a partition split, on the embedded server with four partition key ranges of which one
 * splits while two instances read and writers commit: every event at least once, each aggregate's events in
 * version order, checkpoints that go on past the split, and a catch-up and lag that see both children. A
 * lease keeps the bounds of the range it was created for, through a rebuild too; its reader follows the
 * split inside them.
 */
import { Inject } from '@nestjs/common';
import { ChangeFeedStartFrom, type FeedRange } from '@azure/cosmos';
import { CosmosEventStore, OnStoredEvent, Subscriber, type SubscribedEvent } from '../../src/index.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import { effectivePartitionKey, epkInRange } from '../../src/modules/embedded-cosmos/partition-key-ranges.js';
import {
  DELIVERY_LOG,
  DeliveryLog,
  encode,
  eventually,
  expectAtLeastOnceInOrder,
  gate,
  Recorder,
  startInstance,
  writeConcurrently,
  type Instance,
} from '../support/subscriptions.js';

/** Holds the handling of the aggregates it names until the test opens the gate. */
const HELD = Symbol('HELD');
interface Held {
  aggregates: Set<string>;
  gate: Promise<void>;
}

@Subscriber({ name: 'held', maxItemCount: 10 })
class HeldRecorder {
  constructor(
    @Inject(DELIVERY_LOG) private readonly log: DeliveryLog,
    @Inject(HELD) private readonly held: Held,
  ) {}

  @OnStoredEvent()
  async record({ streamId: aggregateId, version, attempt }: SubscribedEvent): Promise<void> {
    if (this.held.aggregates.has(aggregateId)) await this.held.gate;
    this.log.record({ instance: 'held', subscriber: 'held', aggregateId, version, attempt });
  }
}

interface StoredLease {
  id: string;
  feedRange: { minInclusive: string; maxExclusive: string };
  continuation: string | null;
}

/** The highest version saved so far, per aggregate. */
const saved = new Map<string, number>();

let fixture: CosmosFixture;
let store: CosmosEventStore;
const instances: Instance[] = [];

beforeAll(async () => {
  fixture = await startCosmosFixture({ partitionKeyRanges: 4 });
  store = new CosmosEventStore(fixture.events);
});

afterAll(async () => {
  await Promise.all(instances.splice(0).map((i) => i.close()));
  await fixture?.close();
});

async function instance(name: string, log: DeliveryLog, subscribers: Array<new (...args: never[]) => unknown> = [Recorder], held?: Held): Promise<Instance> {
  const started = await startInstance({
    name,
    endpoint: fixture.cosmos.endpoint,
    key: fixture.cosmos.key,
    databaseId: fixture.events.database.id,
    subscribers,
    log,
    providers: held ? [{ provide: HELD, useValue: held }] : [],
  });
  instances.push(started);
  return started;
}

async function leases(): Promise<StoredLease[]> {
  const { resources } = await fixture.events.database
    .container('leases')
    .items.query<StoredLease>({ query: "SELECT * FROM c WHERE c.type = 'lease'", parameters: [] }, { partitionKey: 'recorder' })
    .fetchAll();
  return resources.sort((x, y) => x.feedRange.minInclusive.localeCompare(y.feedRange.minInclusive));
}

/** The per-range continuations of a lease's checkpoint (the SDK's composite continuation token). */
const continuations = (lease: StoredLease) =>
  (JSON.parse(lease.continuation ?? '{"Continuation":[]}') as { Continuation: Array<{ minInclusive: string; maxExclusive: string }> })
    .Continuation;

/** The aggregates whose events are in the given feed ranges. */
async function aggregatesIn(ranges: ReadonlyArray<{ minInclusive: string; maxExclusive: string }>): Promise<Set<string>> {
  const [any] = await fixture.events.getFeedRanges();
  const FeedRangeClass = any.constructor as new (minInclusive: string, maxExclusive: string) => FeedRange;
  const found = new Set<string>();
  for (const { minInclusive, maxExclusive } of ranges) {
    const iterator = fixture.events.items.getChangeFeedIterator<{ a: string }>({
      changeFeedStartFrom: ChangeFeedStartFrom.Beginning(new FeedRangeClass(minInclusive, maxExclusive)),
    });
    for (let page = await iterator.readNext(); page.statusCode !== 304; page = await iterator.readNext()) {
      for (const item of page.result) found.add(item.a);
    }
  }
  return found;
}

describe('subscriptions: partition split', () => {
  it('loses nothing and keeps version order per aggregate when a range splits mid-stream under two instances', async () => {
    const log = new DeliveryLog();
    const aggregates = Array.from({ length: 24 }, (_, i) => `Order/${i}`);
    const a = await instance('A', log);
    const b = await instance('B', log);
    await writeConcurrently(store, aggregates, 1, 10, { maxChunk: 3, onSaved: (id, v) => saved.set(id, v) });
    await eventually(
      'the ranges are shared two and two',
      () => a.subscriptions.status()[0].ownedRanges.length === 2 && b.subscriptions.status()[0].ownedRanges.length === 2,
      20_000,
    );
    const before = await leases();
    expect(before).toHaveLength(4);

    // The range splits while writers commit and both instances read.
    const writing = writeConcurrently(store, aggregates, 11, 30, { maxChunk: 3, onSaved: (id, v) => saved.set(id, v) });
    await eventually('the readers are past the first writes', () => log.deliveries.length > 24 * 12, 20_000);
    const { parent, children } = fixture.cosmos.splitPartition(fixture.events.database.id, fixture.events.id, '1');
    const splitAt = log.deliveries.length;
    const savedAtSplit = new Map(saved);
    await writing;
    await writeConcurrently(store, aggregates, 31, 40, { maxChunk: 3, onSaved: (id, v) => saved.set(id, v) });
    await a.subscriptions.waitForCatchUp('recorder', { timeoutMs: 30_000 });

    expectAtLeastOnceInOrder(log.deliveries, aggregates, 40);
    // No instance lost a lease or failed: nothing was delivered twice.
    expect(log.deliveries).toHaveLength(24 * 40);

    // The lease of the split range keeps its bounds; its checkpoint now goes on in both children.
    const after = await leases();
    expect(after.map((l) => l.id)).toEqual(before.map((l) => l.id));
    const split = after.find((l) => l.feedRange.minInclusive === parent.minInclusive && l.feedRange.maxExclusive === parent.maxExclusive);
    expect(split).toBeDefined();
    expect(continuations(split!).map(({ minInclusive, maxExclusive }) => ({ minInclusive, maxExclusive })).sort((x, y) => x.minInclusive.localeCompare(y.minInclusive))).toEqual(
      children.map(({ minInclusive, maxExclusive }) => ({ minInclusive, maxExclusive })),
    );
    // The reader was behind in the parent when it split: events saved before the split were delivered after
    // it, read from the children with the parent's continuation.
    const inSplitRange = await aggregatesIn(children);
    expect(inSplitRange.size).toBeGreaterThan(0);
    const backlog = log.deliveries
      .slice(splitAt)
      .filter((d) => inSplitRange.has(d.aggregateId) && d.version <= (savedAtSplit.get(d.aggregateId) ?? 0));
    expect(backlog.length).toBeGreaterThan(0);
    const [lag] = await b.subscriptions.lag('recorder');
    expect(lag).toMatchObject({ state: 'running', estimatedPending: 0, behindMs: 0 });
    // Still one lease per range of the first start: the children were not given leases of their own.
    expect(lag.ranges).toHaveLength(4);

    // Later writes still reach the handlers through the children.
    await writeConcurrently(store, aggregates, 41, 45, { maxChunk: 3, onSaved: (id, v) => saved.set(id, v) });
    await b.subscriptions.waitForCatchUp('recorder', { timeoutMs: 30_000 });
    expectAtLeastOnceInOrder(log.deliveries, aggregates, 45);
    expect(log.deliveries).toHaveLength(24 * 45);

    // A checkpoint taken after the split resumes on another instance: A hands every lease over to B.
    await a.close();
    await writeConcurrently(store, aggregates, 46, 50, { maxChunk: 3, onSaved: (id, v) => saved.set(id, v) });
    await eventually('B reads every range', () => b.subscriptions.status()[0].ownedRanges.length === 4, 20_000);
    await b.subscriptions.waitForCatchUp('recorder', { timeoutMs: 30_000 });
    expectAtLeastOnceInOrder(log.deliveries, aggregates, 50);
    expect(log.deliveries).toHaveLength(24 * 50);
  }, 60_000);
});

describe('subscriptions: catching up across a split', () => {
  it('waits for the events of every child of a split range, not only for those of the first with changes', async () => {
    const log = new DeliveryLog();
    // (The first test split range 1 already; range 2 has not split yet.)
    const { resources } = await fixture.events.readPartitionKeyRanges().fetchAll();
    const range = resources.find((r) => r.id === '2')!;
    // Two aggregates in range 2, one in each half it splits into.
    const epk = (id: string) => effectivePartitionKey(id, { paths: ['/a'], kind: 'Hash', version: 2 });
    const middle = (() => {
      const low = BigInt(`0x${range.minInclusive}`);
      const high = BigInt(`0x${range.maxExclusive}`);
      return ((low + high) / 2n).toString(16).toUpperCase().padStart(32, '0');
    })();
    const candidates = Array.from({ length: 200 }, (_, i) => `Held/${i}`).filter((id) => epkInRange(epk(id), range.minInclusive, range.maxExclusive));
    const low = candidates.find((id) => epk(id) < middle)!;
    const high = candidates.find((id) => epk(id) >= middle)!;
    expect(low && high).toBeTruthy();

    const opened = gate();
    const held: Held = { aggregates: new Set([high]), gate: opened.promise };
    // A first run fixes the checkpoints, then stops: the leases keep them.
    const first = await instance('first', log, [HeldRecorder], { aggregates: new Set(), gate: Promise.resolve() });
    await store.save('Held/start', [{ version: 1, data: encode({}) }]);
    await first.subscriptions.waitForCatchUp('held', { timeoutMs: 10_000 });
    await first.close();

    // Range 2 splits with a change pending in its low half; the high half gets changes after the split.
    await store.save(low, [{ version: 1, data: encode({}) }]);
    fixture.cosmos.splitPartition(fixture.events.database.id, fixture.events.id, '2');
    for (let v = 1; v <= 3; v++) await store.save(high, [{ version: v, data: encode({}) }]);

    const second = await instance('second', log, [HeldRecorder], held);
    const caughtUp = second.subscriptions.waitForCatchUp('held', { timeoutMs: 10_000 }).then(
      () => 'caught up',
      (err: unknown) => `${String(err)}`,
    );
    // The low half is handled, the high half held: the wait must not end while its events are unhandled.
    await eventually('the low half is handled', () => log.of('held').some((d) => d.aggregateId === low), 10_000);
    const early = await Promise.race([caughtUp, new Promise((resolve) => setTimeout(() => resolve('waiting'), 1_000))]);
    const handledThen = log.of('held').filter((d) => d.aggregateId === high).length;
    opened.open();
    expect(await caughtUp).toBe('caught up');
    expect({ early, handledThen }).toEqual({ early: 'waiting', handledThen: 0 });
    expect(log.of('held').filter((d) => d.aggregateId === high).map((d) => d.version)).toEqual([1, 2, 3]);

    // A rebuild rewinds the leases but keeps their bounds: the children of a split get no leases of their own.
    const leasesBefore = (await second.subscriptions.lag('held'))[0].ranges.map((r) => r.range);
    await second.subscriptions.rebuild('held', { from: 'beginning' });
    await second.subscriptions.waitForCatchUp('held', { timeoutMs: 10_000 });
    expect((await second.subscriptions.lag('held'))[0].ranges.map((r) => r.range)).toEqual(leasesBefore);
    expect(await fixture.events.getFeedRanges()).toHaveLength(leasesBefore.length + 1);
  }, 30_000);
});
