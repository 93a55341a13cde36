/*
 * Delivery through subscriptions, on the embedded server with four partition key ranges: every event at
 * least once and each aggregate's events in version order while writers commit concurrently and a second
 * instance joins; decoding and routing by type; lag, from the checkpoints, in code and in the health check.
 */
import { Inject } from '@nestjs/common';
import {
  CosmosEventStore,
  OnStoredEvent,
  Subscriber,
  SubscriptionsHealthIndicator,
  type SubscribedEvent,
} from '../../src/index.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import {
  DELIVERY_LOG,
  DeliveryLog,
  encode,
  eventually,
  expectAtLeastOnceInOrder,
  Recorder,
  startInstance,
  writeConcurrently,
  type Instance,
} from '../support/subscriptions.js';

interface OrderEvent {
  type: string;
  total?: number;
}

const json = {
  deserialize: (bytes: Uint8Array): unknown => JSON.parse(new TextDecoder().decode(bytes)),
};

@Subscriber({ name: 'router', serializer: json })
class Router {
  constructor(@Inject(DELIVERY_LOG) private readonly log: DeliveryLog) {}

  @OnStoredEvent('Placed', 'Paid')
  money({ streamId: aggregateId, version, event }: SubscribedEvent<OrderEvent>): void {
    this.log.record({ instance: `money:${event?.type}:${event?.total ?? 0}`, subscriber: 'router', aggregateId, version, attempt: 1 });
  }

  @OnStoredEvent({ aggregateIdPrefix: 'Order/' })
  orders({ streamId: aggregateId, version }: SubscribedEvent<OrderEvent>): void {
    this.log.record({ instance: 'orders', subscriber: 'router', aggregateId, version, attempt: 1 });
  }
}


let fixture: CosmosFixture;
let store: CosmosEventStore;
const instances: Instance[] = [];
// A leases container per test: every test starts its consumer groups afresh, its instances share it.
let leasesContainerId: string;
let tests = 0;
beforeEach(() => {
  leasesContainerId = `leases-${++tests}`;
});

beforeAll(async () => {
  fixture = await startCosmosFixture({ partitionKeyRanges: 4 });
  store = new CosmosEventStore(fixture.events);
});

afterEach(async () => {
  await Promise.all(instances.splice(0).map((i) => i.close()));
});

afterAll(async () => {
  await fixture?.close();
});

async function instance(name: string, subscribers: Array<new (...args: never[]) => unknown>, log: DeliveryLog, autoStart = true) {
  const started = await startInstance({
    name,
    endpoint: fixture.cosmos.endpoint,
    key: fixture.cosmos.key,
    databaseId: fixture.events.database.id,
    subscribers,
    log,
    options: { autoStart, leasesContainerId },
  });
  instances.push(started);
  return started;
}

describe('subscriptions: delivery', () => {
  it('delivers every event once, in version order per aggregate, while writers commit and a second instance joins', async () => {
    const log = new DeliveryLog();
    const aggregates = Array.from({ length: 16 }, (_, i) => `Order/${i}`);
    const a = await instance('A', [Recorder], log);
    const firstHalf = writeConcurrently(store, aggregates, 1, 15, { maxChunk: 4 });
    await eventually('A reads', () => log.deliveries.length > 20, 20_000);
    const b = await instance('B', [Recorder], log);
    await firstHalf;
    // The work is shared: four ranges, two each once balanced.
    await eventually(
      'the ranges are split two and two',
      () => a.subscriptions.status()[0].ownedRanges.length === 2 && b.subscriptions.status()[0].ownedRanges.length === 2,
      20_000,
    );
    await writeConcurrently(store, aggregates, 16, 30, { maxChunk: 4 });
    await a.subscriptions.waitForCatchUp('recorder', { timeoutMs: 30_000 });

    expectAtLeastOnceInOrder(log.deliveries, aggregates, 30);
    // Hand-overs between live instances are graceful (page finished, checkpointed, released): no repeats.
    expect(log.deliveries).toHaveLength(16 * 30);
    expect(new Set(log.deliveries.map((d) => d.instance))).toEqual(new Set(['A', 'B']));
    const [lag] = await b.subscriptions.lag('recorder');
    expect(lag).toMatchObject({ name: 'recorder', state: 'running', estimatedPending: 0, behindMs: 0 });
    expect(new Set(lag.ranges.map((r) => r.owner))).toEqual(new Set(['A', 'B']));
  }, 120_000);

  it('decodes events with the serializer and routes them to the handlers whose filter they match', async () => {
    const log = new DeliveryLog();
    await store.save('Order/r1', [
      { version: 1, data: encode({ type: 'Placed', total: 30 }) },
      { version: 2, data: encode({ type: 'Shipped' }) },
      { version: 3, data: encode({ type: 'Paid', total: 30 }) },
    ]);
    await store.save('Customer/r1', [{ version: 1, data: encode({ type: 'Paid', total: 5 }) }]);
    const a = await instance('A', [Router], log);
    await a.subscriptions.waitForCatchUp('router', { timeoutMs: 10_000 });
    const calls = log.of('router').map((d) => `${d.instance} ${d.aggregateId}@${d.version}`);
    // Handlers of one event run in declaration order; Customer/r1 has no Order/ prefix.
    expect(calls.filter((c) => c.includes('Order/r1'))).toEqual([
      'money:Placed:30 Order/r1@1',
      'orders Order/r1@1',
      'orders Order/r1@2',
      'money:Paid:30 Order/r1@3',
      'orders Order/r1@3',
    ]);
    expect(calls.filter((c) => c.includes('Customer/r1'))).toEqual(['money:Paid:5 Customer/r1@1']);
  });

  it('tells the lag before the subscriber runs and after it caught up, in code and in the health check', async () => {
    const log = new DeliveryLog();
    const a = await instance('A', [Recorder], log, false);
    const health = a.module.get(SubscriptionsHealthIndicator);
    // Not started: no leases yet, so everything from the start position is pending.
    const before = await a.subscriptions.lag('recorder');
    expect(before[0].state).toBe('not-started');
    const pendingBefore = before[0].estimatedPending;
    for (let v = 1; v <= 6; v++) await store.save('lag-1', [{ version: v, data: encode({ v }) }]);
    const [lag] = await a.subscriptions.lag('recorder');
    expect(lag.estimatedPending).toBe(pendingBefore + 6);
    expect(lag.behindMs).toBeGreaterThanOrEqual(0);
    expect(lag.ranges).toHaveLength(4);

    await a.subscriptions.start();
    await a.subscriptions.waitForCatchUp('recorder', { timeoutMs: 10_000 });
    const [after] = await a.subscriptions.lag('recorder');
    expect(after).toMatchObject({ state: 'running', estimatedPending: 0, behindMs: 0 });
    expect(log.of('recorder').filter((d) => d.aggregateId === 'lag-1').map((d) => d.version)).toEqual([1, 2, 3, 4, 5, 6]);
    const result = await health.check();
    expect(result.status).toBe('up');
    expect(result.subscribers.recorder).toMatchObject({ state: 'running', estimatedPending: 0 });
    expect(result.subscribers.recorder.ownedHere).toHaveLength(4);
  });
});
