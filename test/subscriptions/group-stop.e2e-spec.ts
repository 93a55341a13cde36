/*
 * An operator's stop of a consumer group (`stopGroup`), on the embedded server with two instances: asked on
 * one, every instance stops reading, the page in hand finished and checkpointed; what is committed while it
 * is stopped waits and is delivered exactly once, in order, after `resume`. Health reports it down with its
 * reason; a rebuild in progress refuses it.
 */
import { Inject } from '@nestjs/common';
import {
  CosmosEventStore,
  OnStoredEvent,
  RebuildInProgressError,
  Subscriber,
  SubscriptionsHealthIndicator,
  UnknownSubscriberError,
  type OnSubscriberRebuild,
  type SubscribedEvent,
} from '../../src/index.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import { DELIVERY_LOG, DeliveryLog, encode, eventually, gate, INSTANCE_NAME, startInstance, type Instance } from '../support/subscriptions.js';

/** What the test holds: the handler waits on `held` for `hold@1`, a rebuild's hook on `rebuild`. */
const GATES = Symbol('GATES');
interface Gates {
  held: ReturnType<typeof gate>;
  rebuild: ReturnType<typeof gate>;
  rebuilding: boolean;
}

@Subscriber({ name: 'gated', maxItemCount: 10 })
class Gated implements OnSubscriberRebuild {
  constructor(
    @Inject(DELIVERY_LOG) private readonly log: DeliveryLog,
    @Inject(INSTANCE_NAME) private readonly instance: string,
    @Inject(GATES) private readonly gates: Gates,
  ) {}

  @OnStoredEvent()
  async handle({ streamId: aggregateId, version, attempt }: SubscribedEvent): Promise<void> {
    this.log.record({ instance: this.instance, subscriber: 'gated', aggregateId, version, attempt });
    if (aggregateId === 'hold' && version === 1) await this.gates.held.promise;
  }

  async onRebuild(): Promise<void> {
    this.gates.rebuilding = true;
    await this.gates.rebuild.promise;
  }
}

let fixture: CosmosFixture;
let store: CosmosEventStore;
const instances: Instance[] = [];
let leasesContainerId: string;
let tests = 0;

beforeAll(async () => {
  fixture = await startCosmosFixture({ partitionKeyRanges: 2 });
  store = new CosmosEventStore(fixture.events);
});

beforeEach(() => {
  leasesContainerId = `leases-stop-${++tests}`;
});

afterEach(async () => {
  await Promise.all(instances.splice(0).map((i) => i.close()));
});

afterAll(async () => {
  await fixture?.close();
});

async function instance(name: string, log: DeliveryLog, gates: Gates): Promise<Instance> {
  const started = await startInstance({
    name,
    endpoint: fixture.cosmos.endpoint,
    key: fixture.cosmos.key,
    databaseId: fixture.events.database.id,
    subscribers: [Gated],
    log,
    options: { leasesContainerId },
    providers: [{ provide: GATES, useValue: gates }],
  });
  instances.push(started);
  return started;
}

const newGates = (): Gates => ({ held: gate(), rebuild: gate(), rebuilding: false });
const keyOf = (d: { aggregateId: string; version: number }) => `${d.aggregateId}@${d.version}`;

describe('subscriptions: stopGroup', () => {
  it('stops the group on every instance after the page in hand; what waits is delivered exactly once, in order, after resume', async () => {
    const log = new DeliveryLog();
    const gates = newGates();
    const a = await instance('A', log, gates);
    const b = await instance('B', log, gates);
    await eventually('both instances read', () =>
      a.subscriptions.status()[0].ownedRanges.length === 1 && b.subscriptions.status()[0].ownedRanges.length === 1,
    );
    const before = Array.from({ length: 6 }, (_, i) => `before-${i}`);
    for (const id of before) await store.save(id, [1, 2, 3].map((version) => ({ version, data: encode({ version }) })));
    await store.save('hold', [1, 2, 3].map((version) => ({ version, data: encode({ version }) })));
    await eventually('the held handler runs', () => log.of('gated').some((d) => keyOf(d) === 'hold@1'));

    // Asked on A; the reader in the held handler (on A or B) finishes its page once let go.
    const stopping = a.subscriptions.stopGroup('gated', { reason: 'maintenance' });
    await eventually('the stop is recorded', async () => (await b.subscriptions.lag('gated'))[0].state === 'stopped');
    expect(log.of('gated').some((d) => keyOf(d) === 'hold@2')).toBe(false);
    gates.held.open();
    await stopping;
    await eventually(
      'no instance holds a range',
      async () =>
        a.subscriptions.status()[0].ownedRanges.length === 0 &&
        b.subscriptions.status()[0].ownedRanges.length === 0 &&
        (await a.subscriptions.lag('gated'))[0].ranges.every((r) => r.owner === undefined),
    );
    // The page in hand was finished and checkpointed: nothing of it is pending, or delivered twice.
    const [lag] = await b.subscriptions.lag('gated');
    expect(lag).toMatchObject({ state: 'stopped', reason: 'maintenance', stoppedBy: 'operator', estimatedPending: 0 });
    const delivered = log.of('gated').map(keyOf);
    expect(delivered.filter((k) => k.startsWith('hold@'))).toEqual(['hold@1', 'hold@2', 'hold@3']);
    expect(new Set(delivered).size).toBe(delivered.length);
    expect(delivered).toHaveLength(before.length * 3 + 3);
    const health = await a.module.get(SubscriptionsHealthIndicator).check();
    expect(health).toMatchObject({ status: 'down', message: 'stopped by an operator: gated' });
    expect(health.subscribers.gated).toMatchObject({ state: 'stopped', reason: 'maintenance', stoppedBy: 'operator' });

    // Committed while stopped, in every range: nobody reads it, past a few lease checks.
    const during = Array.from({ length: 8 }, (_, i) => `during-${i}`);
    for (const id of during) await store.save(id, [1, 2].map((version) => ({ version, data: encode({ version }) })));
    for (const id of before) await store.save(id, [{ version: 4, data: encode({ version: 4 }) }]);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(log.of('gated')).toHaveLength(delivered.length);
    expect((await a.subscriptions.lag('gated'))[0].estimatedPending).toBeGreaterThan(0);
    // Stopping again changes nothing, the reason included.
    await b.subscriptions.stopGroup('gated', { reason: 'again' });
    expect((await a.subscriptions.lag('gated'))[0].reason).toBe('maintenance');

    await b.subscriptions.resume('gated');
    await a.subscriptions.waitForCatchUp('gated', { timeoutMs: 10_000 });
    const after = log.of('gated').slice(delivered.length).map(keyOf);
    const expected = [...during.flatMap((id) => [`${id}@1`, `${id}@2`]), ...before.map((id) => `${id}@4`)];
    expect([...after].sort()).toEqual([...expected].sort());
    for (const id of during) expect(after.filter((k) => k.startsWith(`${id}@`))).toEqual([`${id}@1`, `${id}@2`]);
    const [resumed] = await a.subscriptions.lag('gated');
    expect(resumed.state).toBe('running');
    expect(resumed.stoppedBy).toBeUndefined();
    expect((await b.module.get(SubscriptionsHealthIndicator).check()).status).toBe('up');
  });

  it('refuses while a rebuild runs, and an unknown group', async () => {
    const log = new DeliveryLog();
    const gates = newGates();
    gates.held.open();
    const a = await instance('A', log, gates);
    const b = await instance('B', log, gates);
    await store.save('r-1', [{ version: 1, data: encode({}) }]);
    await a.subscriptions.waitForCatchUp('gated', { timeoutMs: 10_000 });
    await expect(a.subscriptions.stopGroup('no-such-group')).rejects.toBeInstanceOf(UnknownSubscriberError);

    const rebuilding = a.subscriptions.rebuild('gated');
    await eventually('the rebuild hook runs', () => gates.rebuilding);
    await expect(b.subscriptions.stopGroup('gated')).rejects.toBeInstanceOf(RebuildInProgressError);
    gates.rebuild.open();
    await rebuilding;
    expect((await a.subscriptions.lag('gated'))[0].state).toBe('running');
    await b.subscriptions.stopGroup('gated');
    expect((await a.subscriptions.lag('gated'))[0]).toMatchObject({ state: 'stopped', reason: 'stopped by an operator', stoppedBy: 'operator' });
  });
});
