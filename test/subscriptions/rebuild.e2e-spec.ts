/*
 * Rebuild: the consumer group is reset on every instance (to the beginning or to a time), the subscriber
 * clears its read model once, and after catching up again the rebuilt projection equals the live one.
 */
import { Inject } from '@nestjs/common';
import {
  CosmosEventStore,
  RebuildInProgressError,
  ensureContainers,
  ensureDatabase,
  OnStoredEvent,
  Subscriber,
  type OnSubscriberRebuild,
  type StartFrom,
  type SubscribedEvent,
} from '../../src/index.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import { DELIVERY_LOG, DeliveryLog, eventually, INSTANCE_NAME, startInstance, type Instance } from '../support/subscriptions.js';

/**
 * A read model both instances write to, as they would to a shared database: per account, the balance and
 * the last version applied. At-least-once delivery is absorbed by applying each version once, in order.
 */
class Balances {
  readonly accounts = new Map<string, { version: number; balance: number }>();
  rebuilds: StartFrom[] = [];
  /** Makes the next `onRebuild` fail after clearing, as a read model half cleared when its store went away. */
  failNextRebuild = false;
  /** When set, `onRebuild` waits for it after clearing: a long hook. */
  holdRebuild?: Promise<void>;

  apply(aggregateId: string, version: number, amount: number): void {
    const account = this.accounts.get(aggregateId) ?? { version: 0, balance: 0 };
    if (version <= account.version) return; // seen already
    if (version !== account.version + 1) throw new Error(`${aggregateId}: version ${version} after ${account.version}`);
    this.accounts.set(aggregateId, { version, balance: account.balance + amount });
  }

  snapshot(): Record<string, { version: number; balance: number }> {
    return Object.fromEntries([...this.accounts].sort(([x], [y]) => x.localeCompare(y)));
  }
}
const BALANCES = Symbol('BALANCES');

@Subscriber({ name: 'balances', maxItemCount: 7, serializer: { deserialize: (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b)) } })
class BalanceProjection implements OnSubscriberRebuild {
  constructor(
    @Inject(BALANCES) private readonly balances: Balances,
    @Inject(DELIVERY_LOG) private readonly log: DeliveryLog,
    @Inject(INSTANCE_NAME) private readonly instance: string,
  ) {}

  @OnStoredEvent()
  async apply({ streamId: aggregateId, version, event, attempt }: SubscribedEvent<{ amount: number }>): Promise<void> {
    this.log.record({ instance: this.instance, subscriber: 'balances', aggregateId, version, attempt });
    this.balances.apply(aggregateId, version, event!.amount);
    await new Promise((resolve) => setImmediate(resolve));
  }

  async onRebuild(from: StartFrom): Promise<void> {
    this.balances.rebuilds.push(from);
    // From the beginning: start empty. From a time: keep what is there; replayed versions are skipped.
    if (from === 'beginning') this.balances.accounts.clear();
    await this.balances.holdRebuild;
    if (this.balances.failNextRebuild) {
      this.balances.failNextRebuild = false;
      throw new Error('read model store went away');
    }
  }
}

const amountOf = (aggregate: number, version: number) => ((aggregate * 7 + version * 13) % 50) - 10;

let fixture: CosmosFixture;
let store: CosmosEventStore;
let databaseId: string;
let tests = 0;
const instances: Instance[] = [];

beforeAll(async () => {
  fixture = await startCosmosFixture({ partitionKeyRanges: 4 });
});

beforeEach(async () => {
  databaseId = `rebuild-test-${++tests}`;
  const database = await ensureDatabase(fixture.client, databaseId);
  await ensureContainers(database);
  store = new CosmosEventStore(database.container('events'));
});

afterEach(async () => {
  await Promise.all(instances.splice(0).map((i) => i.close()));
});

afterAll(async () => {
  await fixture?.close();
});

async function instance(name: string, log: DeliveryLog, balances: Balances): Promise<Instance> {
  const started = await startInstance({
    name,
    endpoint: fixture.cosmos.endpoint,
    key: fixture.cosmos.key,
    databaseId,
    subscribers: [BalanceProjection],
    log,
    providers: [{ provide: BALANCES, useValue: balances }],
  });
  instances.push(started);
  return started;
}

async function write(accounts: number, from: number, to: number): Promise<void> {
  await Promise.all(
    Array.from({ length: accounts }, async (_, a) => {
      for (let version = from; version <= to; version++) {
        await store.save(`acct-${a}`, [{ version, data: new TextEncoder().encode(JSON.stringify({ amount: amountOf(a, version) })) }]);
      }
    }),
  );
}

function expected(accounts: number, versions: number): Record<string, { version: number; balance: number }> {
  const result: Record<string, { version: number; balance: number }> = {};
  for (let a = 0; a < accounts; a++) {
    let balance = 0;
    for (let v = 1; v <= versions; v++) balance += amountOf(a, v);
    result[`acct-${a}`] = { version: versions, balance };
  }
  return Object.fromEntries(Object.entries(result).sort(([x], [y]) => x.localeCompare(y)));
}

describe('subscriptions: rebuild', () => {
  it('resets the group on every instance and rebuilds a projection equal to the live one', async () => {
    const log = new DeliveryLog();
    const balances = new Balances();
    const a = await instance('A', log, balances);
    const b = await instance('B', log, balances);
    await write(10, 1, 12);
    await a.subscriptions.waitForCatchUp('balances', { timeoutMs: 15_000 });
    await eventually(
      'both instances hold ranges',
      () => a.subscriptions.status()[0].ownedRanges.length > 0 && b.subscriptions.status()[0].ownedRanges.length > 0,
      20_000,
    );
    const live = balances.snapshot();
    expect(live).toEqual(expected(10, 12));
    const deliveredLive = log.deliveries.length;

    // Called on B while A holds ranges: A lets go, the read model is cleared once, every range starts over.
    // An explicit timeout: the default (twice the lease) is only a few seconds under the FAST test options.
    await b.subscriptions.rebuild('balances', { timeoutMs: 30_000 });
    expect(balances.rebuilds).toEqual(['beginning']);
    await b.subscriptions.waitForCatchUp('balances', { timeoutMs: 15_000 });
    expect(balances.snapshot()).toEqual(live);
    const replayed = log.deliveries.slice(deliveredLive);
    expect(new Set(replayed.map((d) => `${d.aggregateId}@${d.version}`)).size).toBe(10 * 12);

    // And it goes on live after the rebuild.
    await write(10, 13, 14);
    await a.subscriptions.waitForCatchUp('balances', { timeoutMs: 15_000 });
    expect(balances.snapshot()).toEqual(expected(10, 14));
  }, 120_000);

  it('stays paused after a failed rebuild, reading nothing onto the half-cleared model, until rebuild is called again', async () => {
    const log = new DeliveryLog();
    const balances = new Balances();
    const a = await instance('A', log, balances);
    await write(3, 1, 3);
    await a.subscriptions.waitForCatchUp('balances', { timeoutMs: 20_000 });

    balances.failNextRebuild = true;
    await expect(a.subscriptions.rebuild('balances', { timeoutMs: 30_000 })).rejects.toThrow(/read model store went away/);
    const [lag] = await a.subscriptions.lag('balances');
    expect(lag.state).toBe('rebuilding');
    const before = log.deliveries.length;
    await write(3, 4, 4);
    // Several lease rounds: a running group would have read the new events by now.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(log.deliveries.length).toBe(before);
    expect(balances.snapshot()).toEqual({});

    await a.subscriptions.rebuild('balances', { timeoutMs: 30_000 });
    await a.subscriptions.waitForCatchUp('balances', { timeoutMs: 20_000 });
    expect(balances.snapshot()).toEqual(expected(3, 4));
  }, 90_000);

  it('rebuilds from a point in time: only events committed from then on are read again', async () => {
    const log = new DeliveryLog();
    const balances = new Balances();
    const a = await instance('A', log, balances);
    await write(3, 1, 2);
    await a.subscriptions.waitForCatchUp('balances', { timeoutMs: 20_000 });
    // Change feed start times have whole seconds: start on a fresh second.
    await new Promise((resolve) => setTimeout(resolve, 1_005 - (Date.now() % 1_000)));
    const from = new Date();
    await write(3, 3, 4);
    await a.subscriptions.waitForCatchUp('balances', { timeoutMs: 20_000 });
    const before = log.deliveries.length;

    await a.subscriptions.rebuild('balances', { from, timeoutMs: 30_000 });
    expect(balances.rebuilds).toEqual([from]);
    await a.subscriptions.waitForCatchUp('balances', { timeoutMs: 20_000 });
    const replayed = log.deliveries.slice(before).map((d) => d.version);
    expect(replayed.sort()).toEqual([3, 3, 3, 4, 4, 4]);
    expect(balances.snapshot()).toEqual(expected(3, 4));
    expect(await a.subscriptions.deadLetters('balances')).toEqual([]);
  }, 90_000);

  it('aborts, touching no lease, once its lock was lost (expired and taken by another rebuild)', async () => {
    const log = new DeliveryLog();
    const balances = new Balances();
    const a = await instance('A', log, balances);
    await write(2, 1, 3);
    await a.subscriptions.waitForCatchUp('balances', { timeoutMs: 20_000 });
    const leasesContainer = fixture.client.database(databaseId).container('leases');
    const continuations = async () => {
      const { resources } = await leasesContainer.items
        .query<{ id: string; continuation: string | null }>("SELECT c.id, c.continuation FROM c WHERE c.type = 'lease'", { partitionKey: 'balances' })
        .fetchAll();
      return resources.sort((x, y) => x.id.localeCompare(y.id));
    };
    const checkpointed = await continuations();
    expect(checkpointed.every((l) => l.continuation !== null)).toBe(true);

    let release!: () => void;
    balances.holdRebuild = new Promise((resolve) => (release = resolve));
    const rebuild = a.subscriptions.rebuild('balances', { timeoutMs: 30_000 });
    rebuild.catch(() => undefined);
    await eventually('the hook runs', () => balances.rebuilds.length === 1, 20_000);
    // As if A's renewals had failed past the lock's expiry and another instance's rebuild had taken it over.
    const now = Date.now();
    await leasesContainer.items.upsert({ id: 'rebuild', group: 'balances', type: 'rebuild', holder: 'B', startedAt: now, expiresAt: now + 60_000 });
    // Long enough for a renewal to meet the other lock.
    await new Promise((resolve) => setTimeout(resolve, 500));
    release();
    await expect(rebuild).rejects.toBeInstanceOf(RebuildInProgressError);
    await expect(rebuild).rejects.toThrow(/on B/);
    // No lease was rewound by the aborted rebuild, and the other rebuild's lock is left alone.
    expect(await continuations()).toEqual(checkpointed);
    const { resource: lock } = await leasesContainer.item('rebuild', 'balances').read<{ holder: string }>();
    expect(lock?.holder).toBe('B');
  }, 90_000);
});
