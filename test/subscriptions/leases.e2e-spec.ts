/*
 * Leases and checkpoints across instances: an instance cut off mid-page loses nothing (its ranges are taken
 * over once its leases expire, from their last checkpoint, and never read by two instances at once); a restart
 * reads again at most the page that was not checkpointed; a graceful shutdown finishes the handler in flight,
 * checkpoints and releases every lease.
 */
import { Inject } from '@nestjs/common';
import {
  CosmosEventStore,
  ensureContainers,
  ensureDatabase,
  OnEvent,
  Subscriber,
  type SubscribedEvent,
} from '../../src/index.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import {
  DELIVERY_LOG,
  DeliveryLog,
  eventually,
  gate,
  INSTANCE_NAME,
  startInstance,
  type Delivery,
  type Instance,
} from '../support/subscriptions.js';

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

@Subscriber({ name: 'ledger', maxItemCount: 4 })
class Ledger {
  constructor(
    @Inject(DELIVERY_LOG) private readonly log: DeliveryLog,
    @Inject(INSTANCE_NAME) private readonly instance: string,
    @Inject(HOLD) private readonly hold: Hold,
  ) {}

  @OnEvent()
  async handle({ aggregateId, version, attempt }: SubscribedEvent): Promise<void> {
    this.log.record({ instance: this.instance, subscriber: 'ledger', aggregateId, version, attempt });
    await this.hold.pass(this.instance, `${aggregateId}@${version}`);
  }
}

const data = new TextEncoder().encode('{}');

let fixture: CosmosFixture;
let store: CosmosEventStore;
const instances: Instance[] = [];
// A database per test: the pages a test reasons about hold only its own events.
let databaseId: string;
let hold: Hold;
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
});

afterEach(async () => {
  hold.release();
  await Promise.all(instances.splice(0).map((i) => i.close()));
});

afterAll(async () => {
  await fixture?.close();
});

async function instance(name: string, log: DeliveryLog): Promise<Instance> {
  const started = await startInstance({
    name,
    endpoint: fixture.cosmos.endpoint,
    key: fixture.cosmos.key,
    databaseId,
    subscribers: [Ledger],
    log,
    providers: [{ provide: HOLD, useValue: hold }],
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
    .items.query<{ id: string; owner: string | null; expiresAt: number; continuation: string | null }>(
      "SELECT * FROM c WHERE c.type = 'lease'",
    )
    .fetchAll();
  return resources;
}

function expectEveryVersionInOrder(deliveries: Delivery[], aggregates: string[], count: number): void {
  for (const aggregateId of aggregates) {
    const versions = deliveries.filter((d) => d.aggregateId === aggregateId).map((d) => d.version);
    const seen = new Set<number>();
    for (const version of versions) {
      if (version > 1 && !seen.has(version - 1)) throw new Error(`${aggregateId}: ${version} before ${version - 1}: ${versions.join(',')}`);
      seen.add(version);
    }
    expect(seen.size).toBe(count);
  }
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

    expectEveryVersionInOrder(log.deliveries, aggregates, 15);
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
    expectEveryVersionInOrder(log.deliveries, aggregates, 3);
    expect(await leaseDocuments()).toHaveLength(4);
  }, 60_000);
});
