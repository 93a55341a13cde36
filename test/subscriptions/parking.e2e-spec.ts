/*
 * Policy `dead-letter` keeps each aggregate's order: once a handler gives up on an event, its aggregate is
 * parked. Its later events wait, recorded durably with the lease (they survive a takeover), while other
 * aggregates go on; replaying or discarding the dead letter releases them, in order. Dead letters and parked
 * events live outside the group's lease partition.
 */
import { Inject } from '@nestjs/common';
import { CosmosEventStore, OnStoredEvent, Subscriber, type SubscribedEvent } from '../../src/index.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import { DELIVERY_LOG, DeliveryLog, encode, eventually, INSTANCE_NAME, startInstance, type Instance } from '../support/subscriptions.js';

const POISON = Symbol('POISON');

@Subscriber({ name: 'parking', retry: { attempts: 2, initialDelayMs: 1 } })
class Parking {
  constructor(
    @Inject(DELIVERY_LOG) private readonly log: DeliveryLog,
    @Inject(INSTANCE_NAME) private readonly instance: string,
    @Inject(POISON) private readonly poison: Set<string>,
  ) {}

  @OnStoredEvent()
  handle({ streamId: aggregateId, version, attempt }: SubscribedEvent): void {
    this.log.record({ instance: this.instance, subscriber: 'parking', aggregateId, version, attempt });
    if (this.poison.has(`${aggregateId}@${version}`)) throw new Error(`cannot handle ${aggregateId}@${version}`);
  }
}

let fixture: CosmosFixture;
let store: CosmosEventStore;
const instances: Instance[] = [];
let tests = 0;

beforeAll(async () => {
  fixture = await startCosmosFixture();
  store = new CosmosEventStore(fixture.events);
});

afterEach(async () => {
  await Promise.all(instances.splice(0).map((i) => i.close()));
});

afterAll(async () => {
  await fixture?.close();
});

async function instance(name: string, log: DeliveryLog, poison: Set<string>, leasesContainerId: string): Promise<Instance> {
  const started = await startInstance({
    name,
    endpoint: fixture.cosmos.endpoint,
    key: fixture.cosmos.key,
    databaseId: fixture.events.database.id,
    subscribers: [Parking],
    log,
    options: { leasesContainerId },
    providers: [{ provide: POISON, useValue: poison }],
  });
  instances.push(started);
  return started;
}

const save = (aggregateId: string, from: number, to: number) =>
  store.save(
    aggregateId,
    Array.from({ length: to - from + 1 }, (_, i) => ({ version: from + i, data: encode({ v: from + i }) })),
  );
const versionsOf = (log: DeliveryLog, aggregateId: string) => log.of('parking').filter((d) => d.aggregateId === aggregateId).map((d) => d.version);

it.each([
  ['replayed', 'replay'],
  ['discarded', 'discard'],
] as const)('parks an aggregate behind its dead letter across a takeover and releases it in order once %s', async (_label, how) => {
  const leases = `leases-parking-${++tests}`;
  const log = new DeliveryLog();
  const p = `p${tests}`;
  const q = `q${tests}`;
  const poison = new Set([`${p}@3`]);
  const a = await instance('A', log, poison, leases);
  await save(p, 1, 6);
  await save(q, 1, 3);
  await a.subscriptions.waitForCatchUp('parking', { timeoutMs: 10_000 });
  expect(versionsOf(log, p)).toEqual([1, 2, 3, 3]);
  expect(versionsOf(log, q)).toEqual([1, 2, 3]);
  expect(a.subscriptions.status()[0].parkedAggregates).toEqual([p]);
  expect((await a.subscriptions.lag('parking'))[0].parkedAggregates).toEqual([p]);

  // Other aggregates go on; p's new events wait too.
  await save(p, 7, 7);
  await save(q, 4, 4);
  await a.subscriptions.waitForCatchUp('parking', { timeoutMs: 10_000 });
  expect(versionsOf(log, p)).toEqual([1, 2, 3, 3]);
  expect(versionsOf(log, q)).toEqual([1, 2, 3, 4]);

  // A takeover keeps p parked.
  await a.close();
  const b = await instance('B', log, poison, leases);
  await save(p, 8, 8);
  await b.subscriptions.waitForCatchUp('parking', { timeoutMs: 10_000 });
  expect(versionsOf(log, p)).toEqual([1, 2, 3, 3]);
  expect((await b.subscriptions.lag('parking'))[0].parkedAggregates).toEqual([p]);

  // Dead letters are not in the group's lease partition.
  const { resources: inGroupPartition } = await fixture.events.database
    .container(leases)
    .items.query<{ type: string }>('SELECT c.type FROM c', { partitionKey: 'parking' })
    .fetchAll();
  expect(inGroupPartition.map((d) => d.type).sort()).toEqual(['group', 'lease']);
  const page = await b.subscriptions.deadLetterPage('parking', { maxItems: 1 });
  expect(page.letters.map((l) => [l.aggregateId, l.version])).toEqual([[p, 3]]);

  poison.clear();
  const [letter] = await b.subscriptions.deadLetters('parking');
  if (how === 'replay') await b.subscriptions.replayDeadLetter('parking', letter.id);
  else await b.subscriptions.discardDeadLetter('parking', letter.id);
  await eventually('p is released', () => versionsOf(log, p).at(-1) === 8, 10_000);

  const released = how === 'replay' ? [1, 2, 3, 3, 3, 4, 5, 6, 7, 8] : [1, 2, 3, 3, 4, 5, 6, 7, 8];
  expect(versionsOf(log, p)).toEqual(released);
  await eventually('the lease lets p go', async () => (await b.subscriptions.lag('parking'))[0].parkedAggregates.length === 0);
  expect(b.subscriptions.status()[0].parkedAggregates).toEqual([]);
  expect(await b.subscriptions.deadLetters('parking')).toEqual([]);

  // Later events of p flow again.
  await save(p, 9, 9);
  await b.subscriptions.waitForCatchUp('parking', { timeoutMs: 10_000 });
  expect(versionsOf(log, p)).toEqual([...released, 9]);
}, 60_000);

it('a rebuild unparks everything and reads a parked aggregate again in order', async () => {
  const leases = `leases-parking-${++tests}`;
  const log = new DeliveryLog();
  const p = `p${tests}`;
  const poison = new Set([`${p}@3`]);
  const a = await instance('A', log, poison, leases);
  await save(p, 1, 6);
  await a.subscriptions.waitForCatchUp('parking', { timeoutMs: 10_000 });
  expect(versionsOf(log, p)).toEqual([1, 2, 3, 3]);
  expect(a.subscriptions.status()[0].parkedAggregates).toEqual([p]);

  // The rebuild reads p from its start again: 1 and 2 are handled, 3 fails again (a fresh letter), 4-6 wait.
  const before = versionsOf(log, p).length;
  await a.subscriptions.rebuild('parking', { timeoutMs: 30_000 });
  await a.subscriptions.waitForCatchUp('parking', { timeoutMs: 10_000 });
  await eventually('p is parked again', () => versionsOf(log, p).length >= before + 4, 10_000);
  expect(versionsOf(log, p).slice(before)).toEqual([1, 2, 3, 3]);
  const letters = await a.subscriptions.deadLetters('parking');
  expect(letters.map((l) => [l.aggregateId, l.version])).toEqual([[p, 3]]);

  poison.clear();
  await a.subscriptions.replayDeadLetter('parking', letters[0].id);
  await eventually('p is released', () => versionsOf(log, p).at(-1) === 6, 10_000);
  expect(versionsOf(log, p).slice(before)).toEqual([1, 2, 3, 3, 3, 4, 5, 6]);
  await eventually('the lease lets p go', async () => (await a.subscriptions.lag('parking'))[0].parkedAggregates.length === 0);
}, 60_000);
