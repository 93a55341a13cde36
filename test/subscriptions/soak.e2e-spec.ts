/*
 * Soak (bounded in time): one consumer group on a container of ONE physical partition, 8 sub-range leases,
 * 20,000 events over 200 aggregates written while four instances run, join, leave gracefully and are killed
 * (cut off from Cosmos DB, their leases left to expire). It shows:
 * - every aggregate's events delivered in version order, none skipped;
 * - redeliveries bounded by one page per lease taken over after it expired: B's, and any a live instance let
 *   lapse (a machine starved of CPU can delay a renewal past the lease); graceful hand-overs and leaves
 *   checkpoint first, so they deliver nothing again;
 * - every instance that joins is given a share of the leases, and handles events.
 */
import { Inject } from '@nestjs/common';
import { CosmosEventStore, OnStoredEvent, Subscriber, type SubscribedEvent } from '../../src/index.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import { DELIVERY_LOG, DeliveryLog, eventually, expectAtLeastOnceInOrder, INSTANCE_NAME, startInstance, writeConcurrently, type Instance } from '../support/subscriptions.js';

const PAGE = 50;
const LEASES = 8;
const AGGREGATES = 200;
const VERSIONS = 100;

/** Instances the test killed: a dead process handles nothing, so their handlers record nothing more. */
const KILLED = Symbol('KILLED');

@Subscriber({ name: 'soak', maxItemCount: PAGE })
class Soak {
  constructor(
    @Inject(DELIVERY_LOG) private readonly log: DeliveryLog,
    @Inject(INSTANCE_NAME) private readonly instance: string,
    @Inject(KILLED) private readonly killed: Set<string>,
  ) {}

  @OnStoredEvent()
  handle({ streamId, version, attempt }: SubscribedEvent): void {
    if (this.killed.has(this.instance)) throw new Error('killed');
    this.log.record({ instance: this.instance, subscriber: 'soak', aggregateId: streamId, version, attempt });
  }
}

let fixture: CosmosFixture;
const instances = new Map<string, Instance>();
const killed = new Set<string>();

beforeAll(async () => {
  fixture = await startCosmosFixture({ partitionKeyRanges: 1 });
});

afterAll(async () => {
  await Promise.all([...instances.values()].map((i) => i.close().catch(() => undefined)));
  await fixture?.close();
});

async function join(name: string, log: DeliveryLog): Promise<Instance> {
  const started = await startInstance({
    name,
    endpoint: fixture.cosmos.endpoint,
    key: fixture.cosmos.key,
    databaseId: fixture.events.database.id,
    subscribers: [Soak],
    log,
    options: { leases: LEASES, retry: { attempts: 1, initialDelayMs: 1, maxDelayMs: 1 }, shutdownTimeoutMs: 2_000 },
    providers: [{ provide: KILLED, useValue: killed }],
  });
  instances.set(name, started);
  return started;
}

/** Ranges the instance reads now. */
function held(name: string): number {
  return instances.get(name)!.subscriptions.status()[0].ownedRanges.length;
}

/** Waits until the balancer has given each named instance at least one lease, before the next events come. */
async function balanced(...names: string[]): Promise<void> {
  await eventually(`${names.join(', ')} each hold a lease`, () => names.every((name) => held(name) > 0), 30_000);
}

/** Leases taken over after they expired, as the takers log them ("took <range> from <owner> (expired)"). */
function expiredTakeovers(): number {
  return [...instances.values()].flatMap((i) => i.logger.lines).filter((l) => / from .*expired\)/.test(l.message)).length;
}

it('keeps every aggregate in order through joins, leaves and kills, with bounded redelivery, every instance taking a share', async () => {
  const store = new CosmosEventStore(fixture.events);
  const log = new DeliveryLog();
  const aggregates = Array.from({ length: AGGREGATES }, (_, i) => `Soak/${i}`);
  await Promise.all(['A', 'B', 'C', 'D'].map((name) => join(name, log)));
  await balanced('A', 'B', 'C', 'D');

  const third = VERSIONS / 4;
  await writeConcurrently(store, aggregates, 1, third, { maxChunk: 10 });
  // Join: a fifth instance; leave: A gracefully.
  await join('E', log);
  await balanced('E');
  await writeConcurrently(store, aggregates, third + 1, 2 * third, { maxChunk: 10 });
  await instances.get('A')!.close();
  // Kill: B is cut off mid-stream and handles nothing more; its leases expire and are taken over.
  const leasesOfB = held('B');
  killed.add('B');
  instances.get('B')!.cut('all');
  await writeConcurrently(store, aggregates, 2 * third + 1, 3 * third, { maxChunk: 10 });
  // A new instance joins in B's place; C leaves gracefully.
  await join('F', log);
  await instances.get('C')!.close();
  await balanced('D', 'E', 'F');
  await writeConcurrently(store, aggregates, 3 * third + 1, VERSIONS, { maxChunk: 10 });

  const live = ['D', 'E', 'F'].map((name) => instances.get(name)!);
  await eventually('the live instances hold every lease', async () => (await live[0].subscriptions.lag('soak'))[0].ranges.every((r) => r.owner && r.owner !== 'B'), 30_000);
  await live[0].subscriptions.waitForCatchUp('soak', { timeoutMs: 30_000 });

  // B's handlers recorded nothing after its kill, as a dead process would.
  const deliveries = log.of('soak');
  expectAtLeastOnceInOrder(deliveries, aggregates, VERSIONS);
  const redelivered = deliveries.length - AGGREGATES * VERSIONS;
  // One page per lease taken over after it expired: the taker reads again from the checkpoint the holder
  // had not moved past its page in hand. B's leases are among them. On a loaded machine others are too: the
  // in-process embedded server then answers lease writes slower than their timeout (a quarter of the lease,
  // halved), the holder stops at its safety margin and the lease lapses; measured, 101 events again after 7
  // takeovers of which 5 such lapses (the run that found it redelivered 209, its bound then one page per B lease).
  const takeovers = expiredTakeovers();
  expect(takeovers).toBeGreaterThanOrEqual(leasesOfB);
  expect({ redelivered, withinOnePagePerTakeover: redelivered <= takeovers * PAGE }).toEqual({ redelivered, withinOnePagePerTakeover: true });
  // Every instance that ran while events came took a share.
  for (const name of ['A', 'B', 'C', 'D', 'E', 'F']) expect(deliveries.filter((d) => d.instance === name).length).toBeGreaterThan(0);
}, 120_000);
