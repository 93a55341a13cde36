/*
 * Leases and checkpoints across instances: an instance cut off mid-page loses nothing (its ranges are taken
 * over once its leases expire, from their last checkpoint, and never read by two instances at once); a restart
 * reads again at most the page that was not checkpointed; a graceful shutdown finishes the handler in flight,
 * checkpoints and releases every lease. Two processes configured with the same instance id are two instances
 * all the same: a lease belongs to one start of the subscriptions, not to a name.
 */
import { Inject } from '@nestjs/common';
import { ChangeFeedStartFrom, type FeedRange } from '@azure/cosmos';
import {
  CosmosEventStore,
  ensureContainers,
  ensureDatabase,
  OnStoredEvent,
  Subscriber,
  type SubscribedEvent,
} from '../../src/index.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import {
  DELIVERY_LOG,
  DeliveryLog,
  eventually,
  expectAtLeastOnceInOrder,
  gate,
  INSTANCE_NAME,
  startInstance,
  type Instance,
} from '../support/subscriptions.js';
import type { SubscriptionsModuleOptions } from '../../src/index.js';

/** Lets a test hold the next handler call of one instance (or of one event) until it opens the gate. */
class Hold {
  instance?: string;
  event?: string;
  private held = gate();
  reached = gate();

  arm(target: { instance?: string; event?: string }): void {
    Object.assign(this, target);
    this.held = gate();
    this.reached = gate();
  }

  async pass(instance: string, event: string): Promise<void> {
    const armed = this.instance !== undefined || this.event !== undefined;
    if (!armed || (this.instance !== undefined && this.instance !== instance) || (this.event !== undefined && this.event !== event)) {
      return;
    }
    this.instance = this.event = undefined;
    this.reached.open();
    await this.held.promise;
  }

  release(): void {
    this.held.open();
  }
}
const HOLD = Symbol('HOLD');

/** One handler call from start to end, to tell whether two instances were handling a range at the same time. */
interface Span {
  instance: string;
  aggregateId: string;
  version: number;
  start: number;
  end: number;
}
/** The handler calls that ended, and how long each call takes (0: no wait of its own). */
class Spans {
  readonly spans: Span[] = [];
  handlerMs = 0;
}
const SPANS = Symbol('SPANS');

@Subscriber({ name: 'ledger', maxItemCount: 4 })
class Ledger {
  constructor(
    @Inject(DELIVERY_LOG) private readonly log: DeliveryLog,
    @Inject(INSTANCE_NAME) private readonly instance: string,
    @Inject(HOLD) private readonly hold: Hold,
    @Inject(SPANS) private readonly spans: Spans,
  ) {}

  @OnStoredEvent()
  async handle({ streamId: aggregateId, version, attempt }: SubscribedEvent): Promise<void> {
    const start = performance.now();
    this.log.record({ instance: this.instance, subscriber: 'ledger', aggregateId, version, attempt });
    await this.hold.pass(this.instance, `${aggregateId}@${version}`);
    if (this.spans.handlerMs > 0) await new Promise((resolve) => setTimeout(resolve, this.spans.handlerMs));
    this.spans.spans.push({ instance: this.instance, aggregateId, version, start, end: performance.now() });
  }
}

const data = new TextEncoder().encode('{}');

let fixture: CosmosFixture;
let store: CosmosEventStore;
const instances: Instance[] = [];
// A database per test: the pages a test reasons about hold only its own events.
let databaseId: string;
let hold: Hold;
let spans: Spans;
let tests = 0;

beforeAll(async () => {
  fixture = await startCosmosFixture({ partitionKeyRanges: 4 });
});

beforeEach(async () => {
  databaseId = `leases-test-${++tests}`;
  const database = await ensureDatabase(fixture.client, databaseId);
  await ensureContainers(database);
  store = new CosmosEventStore(database.container('events'));
  hold = new Hold();
  spans = new Spans();
});

afterEach(async () => {
  hold.release();
  await Promise.all(instances.splice(0).map((i) => i.close()));
});

afterAll(async () => {
  await fixture?.close();
});

/** An instance named `name` in the delivery log; its instance id is `name` too unless `options` gives one. */
async function instance(name: string, log: DeliveryLog, options?: SubscriptionsModuleOptions): Promise<Instance> {
  const started = await startInstance({
    name,
    endpoint: fixture.cosmos.endpoint,
    key: fixture.cosmos.key,
    databaseId,
    subscribers: [Ledger],
    log,
    options,
    providers: [
      { provide: HOLD, useValue: hold },
      { provide: SPANS, useValue: spans },
    ],
  });
  instances.push(started);
  return started;
}

/** Appends versions `from`..`to` to each aggregate, one event per write (so pages hold several commits). */
async function append(aggregates: string[], from: number, to: number): Promise<void> {
  await Promise.all(
    aggregates.map(async (aggregateId) => {
      for (let version = from; version <= to; version++) await store.save(aggregateId, [{ version, data }]);
    }),
  );
}

async function leaseDocuments() {
  const { resources } = await fixture.client
    .database(databaseId)
    .container('leases')
    .items.query<{ id: string; owner: string | null; session?: string | null; expiresAt: number; continuation: string | null }>(
      "SELECT * FROM c WHERE c.type = 'lease'",
    )
    .fetchAll();
  return resources;
}

/** The feed range (`min-max`) of each aggregate, from the events container's change feed. */
async function rangeOfAggregates(): Promise<Map<string, string>> {
  const events = fixture.client.database(databaseId).container('events');
  const ranges = new Map<string, string>();
  for (const range of await events.getFeedRanges()) {
    const { minInclusive, maxExclusive } = range as FeedRange & { minInclusive: string; maxExclusive: string };
    const iterator = events.items.getChangeFeedIterator<{ a: string }>({
      changeFeedStartFrom: ChangeFeedStartFrom.Beginning(range),
      maxItemCount: 1_000,
    });
    for (;;) {
      const page = await iterator.readNext();
      if (page.statusCode === 304 || page.result.length === 0) break;
      for (const item of page.result) ranges.set(item.a, `${minInclusive}-${maxExclusive}`);
    }
  }
  return ranges;
}

/**
 * Handler calls of A and B on the same feed range that ran at the same time (calls that began before `since`
 * left out), as `range: A x@1 / B y@2` lines.
 */
function overlapping(all: Span[], rangeOf: Map<string, string>, since = Number.NEGATIVE_INFINITY): string[] {
  const found: string[] = [];
  const recent = all.filter((s) => s.start >= since);
  for (const a of recent.filter((s) => s.instance === 'A')) {
    for (const b of recent.filter((s) => s.instance === 'B')) {
      const range = rangeOf.get(a.aggregateId);
      if (range === undefined || range !== rangeOf.get(b.aggregateId)) continue;
      if (a.start < b.end && b.start < a.end) found.push(`${range}: A ${a.aggregateId}@${a.version} / B ${b.aggregateId}@${b.version}`);
    }
  }
  return found;
}

function owned(instance: Instance): string[] {
  return instance.subscriptions.status()[0].ownedRanges;
}

/** Samples, every few milliseconds until stopped, that no feed range is read by A and B at once. */
function watchOwnership(a: Instance, b: Instance): { readonly clashes: string[]; stop(): void } {
  const clashes = new Set<string>();
  const check = () => {
    const ofA = new Set(owned(a));
    for (const range of owned(b)) if (ofA.has(range)) clashes.add(range);
  };
  check();
  const timer = setInterval(check, 5);
  return {
    get clashes() {
      return [...clashes].sort();
    },
    stop: () => clearInterval(timer),
  };
}

describe('subscriptions: leases and checkpoints', () => {
  it('loses nothing when an instance is cut off mid-page: the other takes its ranges over after the leases expire', async () => {
    const log = new DeliveryLog();
    const aggregates = Array.from({ length: 12 }, (_, i) => `acct-${i}`);
    const a = await instance('A', log);
    const b = await instance('B', log);
    await append(aggregates, 1, 5);
    await eventually('the ranges are split two and two', () =>
      a.subscriptions.status()[0].ownedRanges.length === 2 && b.subscriptions.status()[0].ownedRanges.length === 2,
    );
    await a.subscriptions.waitForCatchUp('ledger', { timeoutMs: 20_000 });

    // A stops answering in the middle of a page: its handler is held, then its network goes.
    hold.arm({ instance: 'A' });
    const writing = append(aggregates, 6, 15);
    await hold.reached.promise;
    const cutAt = log.deliveries.length;
    a.cut();
    await eventually('B holds every range', () => b.subscriptions.status()[0].ownedRanges.length === 4, 20_000);
    hold.release();
    await writing;
    await b.subscriptions.waitForCatchUp('ledger', { timeoutMs: 30_000 });

    expectAtLeastOnceInOrder(log.deliveries, aggregates, 15);
    // No range is read by two instances at once. Each aggregate lives in one range, so its readers take
    // turns: at most a hand-over for balance and the takeover, and after the cut A's calls all come first.
    for (const aggregateId of aggregates) {
      const readers = log.deliveries.filter((d) => d.aggregateId === aggregateId).map((d) => d.instance);
      expect(readers.join('')).toMatch(/^(A*B*A*|B*A*B*)$/);
      const afterCut = log.deliveries.slice(cutAt).filter((d) => d.aggregateId === aggregateId).map((d) => d.instance);
      expect(afterCut.join('')).toMatch(/^A*B*$/);
    }
    // What A handled after its last checkpoint is read again: at most one page (4) for each of its 2 ranges.
    const repeated = log.deliveries.length - new Set(log.deliveries.map((d) => `${d.aggregateId}@${d.version}`)).size;
    expect(repeated).toBeGreaterThan(0);
    expect(repeated).toBeLessThanOrEqual(2 * 4);
    expect(log.deliveries.slice(cutAt).filter((d) => d.instance === 'A').length).toBeLessThanOrEqual(2 * 4);
    expect(new Set((await leaseDocuments()).map((l) => l.owner))).toEqual(new Set(['B']));
    expect(b.logger.text).toMatch(/took .* from A \(expired\)/);
  }, 120_000);

  it('after a crash, the next owner reads again only the page that was not checkpointed', async () => {
    const log = new DeliveryLog();
    for (let version = 1; version <= 12; version++) await store.save('solo', [{ version, data }]);
    // Pages of 4: 1-4, 5-8, 9-12. A handles 1-4 (checkpointed), then is held at 7 and cut off.
    hold.arm({ event: 'solo@7' });
    const a = await instance('A', log);
    await hold.reached.promise;
    a.cut();
    hold.release();
    // A finishes its page (its lease is still valid) but cannot checkpoint it; it stops when the lease expires.
    await eventually('A handled solo@8', () => log.deliveries.some((d) => d.instance === 'A' && d.version === 8), 20_000);
    const b = await instance('B', log);
    await b.subscriptions.waitForCatchUp('ledger', { timeoutMs: 30_000 });
    const byB = log.deliveries.filter((d) => d.instance === 'B' && d.aggregateId === 'solo').map((d) => d.version);
    expect(byB).toEqual([5, 6, 7, 8, 9, 10, 11, 12]);
    const byA = log.deliveries.filter((d) => d.instance === 'A' && d.aggregateId === 'solo').map((d) => d.version);
    expect(byA).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  }, 90_000);

  it('on shutdown finishes the handler in flight, checkpoints, and releases every lease', async () => {
    const log = new DeliveryLog();
    for (let version = 1; version <= 6; version++) await store.save('quit', [{ version, data }]);
    hold.arm({ event: 'quit@3' });
    const a = await instance('A', log);
    await hold.reached.promise;
    let closed = false;
    const closing = a.close().then(() => (closed = true));
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(closed).toBe(false);
    hold.release();
    await closing;

    const leases = await leaseDocuments();
    expect(leases).toHaveLength(4);
    expect(leases.every((l) => l.owner === null && l.expiresAt === 0)).toBe(true);
    // The page 1-4 was finished and checkpointed before the lease went: a new instance starts at 5.
    const b = await instance('B', log);
    await b.subscriptions.waitForCatchUp('ledger', { timeoutMs: 20_000 });
    const seen = log.deliveries.filter((d) => d.aggregateId === 'quit').map((d) => `${d.instance}${d.version}`);
    expect(seen).toEqual(['A1', 'A2', 'A3', 'A4', 'B5', 'B6']);
  }, 60_000);
  it('creates the lease of a feed range an interrupted start left without one, and reads its events', async () => {
    const log = new DeliveryLog();
    const aggregates = Array.from({ length: 12 }, (_, i) => `part-${i}`);
    const a = await instance('A', log);
    await eventually('A holds every range', () => a.subscriptions.status()[0].ownedRanges.length === 4, 20_000);
    await a.close();
    // As if the group's initialization had been cut off after the group document and three of its leases.
    const leases = fixture.client.database(databaseId).container('leases');
    const [lost] = await leaseDocuments();
    await leases.item(lost.id, 'ledger').delete();
    expect(await leaseDocuments()).toHaveLength(3);
    await append(aggregates, 1, 3);

    const b = await instance('B', log);
    await b.subscriptions.waitForCatchUp('ledger', { timeoutMs: 30_000 });
    expectAtLeastOnceInOrder(log.deliveries, aggregates, 3);
    expect(await leaseDocuments()).toHaveLength(4);
  }, 60_000);
});

describe('subscriptions: two live processes configured with the same instance id', () => {
  // A deployment mistake the leases must survive: SUBSCRIPTIONS_INSTANCE_ID set to one constant for every pod.
  const twin: SubscriptionsModuleOptions = { instanceId: 'twin' };

  it('never read the same range at once, share the ranges, and deliver every event in order', async () => {
    spans.handlerMs = 2;
    const log = new DeliveryLog();
    const aggregates = Array.from({ length: 12 }, (_, i) => `twin-${i}`);
    const a = await instance('A', log, twin);
    await append(aggregates, 1, 3);
    await eventually('A holds every range', () => owned(a).length === 4);

    const b = await instance('B', log, twin);
    const watch = watchOwnership(a, b);
    try {
      // Writes go on while B asks A for ranges and A hands them over.
      await append(aggregates, 4, 12);
      await b.subscriptions.waitForCatchUp('ledger', { timeoutMs: 30_000 });
      await eventually('the ranges are split two and two', () => {
        expect(watch.clashes).toEqual([]);
        return owned(a).length === 2 && owned(b).length === 2;
      });
      await append(aggregates, 13, 16);
      await b.subscriptions.waitForCatchUp('ledger', { timeoutMs: 30_000 });
    } finally {
      watch.stop();
    }
    expect(watch.clashes).toEqual([]);
    expect(overlapping(spans.spans, await rangeOfAggregates())).toEqual([]);
    expectAtLeastOnceInOrder(log.deliveries, aggregates, 16);

    // Each lease names the configured id, and is held by one of the two sessions: two each.
    const leases = await leaseDocuments();
    expect(new Set(leases.map((l) => l.owner))).toEqual(new Set(['twin']));
    const perSession = new Map<unknown, number>();
    for (const lease of leases) perSession.set(lease.session, (perSession.get(lease.session) ?? 0) + 1);
    expect([...perSession.values()]).toEqual([2, 2]);
    expect([...perSession.keys()].every((session) => typeof session === 'string' && session !== '')).toBe(true);
  }, 60_000);

  it('a twin that takes over an expired lease makes the other one stop reading that range', async () => {
    spans.handlerMs = 2;
    // Short leases: the test waits for one to expire.
    const options: SubscriptionsModuleOptions = { ...twin, leaseDurationMs: 1_500, renewIntervalMs: 150 };
    const log = new DeliveryLog();
    const aggregates = Array.from({ length: 12 }, (_, i) => `lapse-${i}`);
    const a = await instance('A', log, options);
    await append(aggregates, 1, 3);
    await eventually('A holds every range', () => owned(a).length === 4);
    await a.subscriptions.waitForCatchUp('ledger', { timeoutMs: 20_000 });

    // A is in the middle of a handler when it loses the leases container: it cannot renew, its leases lapse.
    hold.arm({ instance: 'A' });
    const writing = append(aggregates, 4, 10);
    await hold.reached.promise;
    a.cut('leases');
    const b = await instance('B', log, options);
    await eventually('B holds every range', () => owned(b).length === 4, 20_000);
    const takenOver = performance.now();

    // A is back, its handler still running: it must see that the range is its twin's now, not its own.
    a.heal();
    await new Promise((resolve) => setTimeout(resolve, 4 * 150));
    const watch = watchOwnership(a, b);
    try {
      hold.release();
      await writing;
      await append(aggregates, 11, 14);
      await b.subscriptions.waitForCatchUp('ledger', { timeoutMs: 30_000 });
    } finally {
      watch.stop();
    }
    expect(watch.clashes).toEqual([]);
    expect(overlapping(spans.spans, await rangeOfAggregates(), takenOver)).toEqual([]);
    expectAtLeastOnceInOrder(log.deliveries, aggregates, 14);
    // (Nest's Logger writes to the logger of the module created last, whichever instance logs.)
    const logs = a.logger.text + b.logger.text;
    expect(logs).toMatch(/took \S+ from twin \(another session, expired\)/);
    expect(logs).toMatch(/lost \S+ to twin \(session \w+: another process runs under this instance id\)/);
  }, 60_000);
});
