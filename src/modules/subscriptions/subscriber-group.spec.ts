import type { Container } from '@azure/cosmos';
import type { Logger } from '@nestjs/common';
import type { GroupDocument, LeaseDocument, LeaseStore, Stored } from './lease-store.js';
import { SubscriberGroup, type GroupSettings } from './subscriber-group.js';
import { SubscriberRuntime, type ResolvedSubscriber } from './subscriber-runtime.js';

const quiet = { log() {}, warn() {}, error() {} } as unknown as Logger;
const range = { minInclusive: '', maxExclusive: 'FF' };
class FakeFeedRange {
  constructor(
    readonly minInclusive: string,
    readonly maxExclusive: string,
  ) {}
}
const settings: GroupSettings = { instanceId: 'A', leaseDurationMs: 1_000, renewIntervalMs: 50, pollIntervalMs: 20, shutdownTimeoutMs: 300 };
const groupDoc: Stored<GroupDocument> = { id: 'group', group: 'sub', type: 'group', state: 'running', updatedAt: 0, _etag: 'g1' };
const leaseDoc: Stored<LeaseDocument> = {
  id: 'lease:-FF',
  group: 'sub',
  type: 'lease',
  feedRange: range,
  owner: null,
  expiresAt: 0,
  requestedBy: null,
  continuation: null,
  startFrom: { kind: 'beginning' },
  checkpointedAt: null,
  _etag: 'l1',
};

function setUp() {
  let feedReads = 0;
  const events = {
    getFeedRanges: () => Promise.resolve([new FakeFeedRange(range.minInclusive, range.maxExclusive)]),
    items: {
      getChangeFeedIterator: () => {
        feedReads++;
        return { readNext: () => new Promise(() => {}) };
      },
    },
  } as unknown as Container;
  // The group takes its own handle on the container (see changeFeedContainer): here, the same fake.
  Object.assign(events, { id: 'events', database: { container: () => events } });
  const subscriber: ResolvedSubscriber = {
    name: 'sub',
    className: 'Sub',
    instance: {},
    handlers: [],
    retry: { attempts: 1, initialDelayMs: 1, maxDelayMs: 1 },
    onFailure: 'dead-letter',
    maxItemCount: 10,
    concurrency: 1,
  };
  const group = new SubscriberGroup(events, {} as Container, new SubscriberRuntime(subscriber, quiet), 'beginning', settings, quiet);
  const written: LeaseDocument[] = [];
  const store = group.store as unknown as Record<string, unknown>;
  store.list = () => Promise.resolve({ group: groupDoc, leases: [leaseDoc] });
  store.replace = (doc: LeaseDocument) => {
    written.push(doc);
    return Promise.resolve({ ...doc, _etag: `w${written.length}` });
  };
  return { group, store: store as unknown as LeaseStore & Record<string, unknown>, written, feedReads: () => feedReads };
}

describe('SubscriberGroup.stop', () => {
  it('a lease taken by a check still in progress when stop() began is released, and no reader starts', async () => {
    const { group, store, written, feedReads } = setUp();
    let reached!: () => void;
    const taking = new Promise<void>((resolve) => (reached = resolve));
    let answer!: () => void;
    store.takeFenced = (g: Stored<GroupDocument>, lease: LeaseDocument) => {
      reached();
      return new Promise((resolve) => (answer = () => resolve({ group: g, lease: { ...lease, _etag: 'l2' } })));
    };
    group.start('s1');
    await taking;
    const stopping = group.stop();
    answer();
    await stopping;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(feedReads()).toBe(0);
    expect(group.status().ownedRanges).toEqual([]);
    expect(written.at(-1)).toMatchObject({ id: leaseDoc.id, owner: null });
  });

  it('does not wait past the shutdown timeout for a check that never ends', async () => {
    const { group, store } = setUp();
    let reached!: () => void;
    const taking = new Promise<void>((resolve) => (reached = resolve));
    let hung!: () => void;
    store.takeFenced = () => {
      reached();
      return new Promise((resolve) => (hung = () => resolve(undefined)));
    };
    group.start('s1');
    await taking;
    const started = Date.now();
    await group.stop();
    expect(Date.now() - started).toBeLessThan(settings.shutdownTimeoutMs + 500);
    // The check ends at last (a request's own timeout would end it): its loop, and the renewal timer, end with it.
    hung();
    await until(() => (group as unknown as { loop?: unknown }).loop === undefined);
  });

  it('starts again after a stop that ran out of time, once the check it left behind has ended', async () => {
    const { group, store } = setUp();
    let takes = 0;
    let release!: () => void;
    let current: Stored<LeaseDocument> = leaseDoc;
    store.list = () => Promise.resolve({ group: groupDoc, leases: [current] });
    store.takeFenced = (g: Stored<GroupDocument>, lease: LeaseDocument) => {
      // The first take hangs past the shutdown timeout, then fails; later ones succeed.
      if (++takes === 1) return new Promise((resolve) => (release = () => resolve(undefined)));
      current = { ...lease, _etag: `l${takes}` };
      return Promise.resolve({ group: g, lease: current });
    };
    group.start('s1');
    await until(() => takes === 1);
    await group.stop();
    group.start('s2');
    release();
    await until(() => group.status().ownedRanges.length === 1);
    // Held, not taken and dropped again: the lease stays this start's over several rounds.
    await new Promise((resolve) => setTimeout(resolve, 4 * settings.renewIntervalMs));
    expect(group.status().ownedRanges).toHaveLength(1);
    expect(takes).toBe(2);
    await group.stop();
  });
});

async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('SubscriberGroup: leases under this instance id', () => {
  async function takesOf(lease: Stored<LeaseDocument>): Promise<number> {
    const { group, store } = setUp();
    let takes = 0;
    store.list = () => Promise.resolve({ group: groupDoc, leases: [lease] });
    store.takeFenced = (g: Stored<GroupDocument>, taken: LeaseDocument) => {
      takes++;
      return Promise.resolve({ group: g, lease: { ...taken, _etag: 'l2' } });
    };
    group.start('s1');
    await new Promise((resolve) => setTimeout(resolve, 5 * settings.renewIntervalMs));
    await group.stop();
    return takes;
  }

  it('are not taken while live when another session holds them: another process with the same id, or a crashed former self', async () => {
    const live = Date.now() + 60_000;
    expect(await takesOf({ ...leaseDoc, owner: 'A', session: 's0', expiresAt: live })).toBe(0);
    // Written before sessions existed: nobody can say whose it is.
    expect(await takesOf({ ...leaseDoc, owner: 'A', expiresAt: live })).toBe(0);
  });

  it('are taken once expired, and a hand-over reserved for the same id in another session is not this one', async () => {
    expect(await takesOf({ ...leaseDoc, owner: 'A', session: 's0', expiresAt: Date.now() - 1 })).toBe(1);
    const reserved = { ...leaseDoc, owner: null, requestedBy: 'A', requestedSession: 's0', expiresAt: Date.now() + 60_000 };
    expect(await takesOf(reserved)).toBe(0);
    expect(await takesOf({ ...reserved, requestedSession: 's1' })).toBe(1);
  });
});

describe('SubscriberGroup.lag', () => {
  it('sends no partition listing per call: at most one, to learn the SDK\'s feed range class, for the process\'s life', async () => {
    const { group, store } = setUp();
    let listings = 0;
    const events = (group as unknown as { events: Record<string, unknown> }).events;
    events.getFeedRanges = () => {
      listings++;
      return Promise.resolve([new FakeFeedRange(range.minInclusive, range.maxExclusive)]);
    };
    // A 304 as @azure/cosmos hands it out: with a position for the range it read.
    const continuationToken = JSON.stringify({ rid: 'r', Continuation: [{ ...range, continuationToken: '"1"' }] });
    events.items = { getChangeFeedIterator: () => ({ readNext: () => Promise.resolve({ statusCode: 304, result: [], continuationToken }) }) };
    store.list = () => Promise.resolve({ group: groupDoc, leases: [leaseDoc] });
    for (let i = 0; i < 5; i++) expect((await group.lag()).estimatedPending).toBe(0);
    // At most the one listing that teaches the process the SDK's feed range class (none once it knows it).
    const first = listings;
    expect(first).toBeLessThanOrEqual(1);
    await group.waitForCatchUp(1_000);
    expect(listings).toBe(first);
  });
});
