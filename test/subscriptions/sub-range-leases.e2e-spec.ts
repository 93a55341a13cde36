/*
 * Sub-range leases: a consumer group on a container of ONE physical partition is cut into `leases` sub-ranges
 * of the hash space, so that several instances share its events, each aggregate in order. A group created
 * with one lease is migrated by cutting that lease at its checkpoint: nothing is read twice.
 */
import { CosmosEventStore } from '../../src/index.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import { DeliveryLog, eventually, expectAtLeastOnceInOrder, Recorder, startInstance, writeConcurrently, type Instance } from '../support/subscriptions.js';

let fixture: CosmosFixture;
let store: CosmosEventStore;
const instances: Instance[] = [];

beforeAll(async () => {
  fixture = await startCosmosFixture({ partitionKeyRanges: 1 });
  store = new CosmosEventStore(fixture.events);
});

afterAll(async () => {
  await Promise.all(instances.splice(0).map((i) => i.close()));
  await fixture?.close();
});

async function instance(name: string, log: DeliveryLog, leases: number): Promise<Instance> {
  const started = await startInstance({
    name,
    endpoint: fixture.cosmos.endpoint,
    key: fixture.cosmos.key,
    databaseId: fixture.events.database.id,
    subscribers: [Recorder],
    log,
    options: { leases },
  });
  instances.push(started);
  return started;
}

it('migrates a one-lease group without reading anything twice, then four instances share one physical partition', async () => {
  const log = new DeliveryLog();
  const aggregates = Array.from({ length: 40 }, (_, i) => `Order/s${i}`);
  // A group as made before sub-range leases: one lease over the one physical partition.
  const first = await instance('first', log, 1);
  await writeConcurrently(store, aggregates, 1, 5, { maxChunk: 2 });
  await first.subscriptions.waitForCatchUp('recorder', { timeoutMs: 20_000 });
  expect((await first.subscriptions.lag('recorder'))[0].ranges).toHaveLength(1);
  await first.close();
  instances.splice(instances.indexOf(first), 1);

  const four = await Promise.all(['A', 'B', 'C', 'D'].map((name) => instance(name, log, 4)));
  await eventually('the lease is cut in four, one per instance', () => four.every((i) => i.subscriptions.status()[0].ownedRanges.length === 1), 20_000);
  await writeConcurrently(store, aggregates, 6, 15, { maxChunk: 3 });
  await four[0].subscriptions.waitForCatchUp('recorder', { timeoutMs: 20_000 });

  expect((await four[0].subscriptions.lag('recorder'))[0].ranges).toHaveLength(4);
  expectAtLeastOnceInOrder(log.deliveries, aggregates, 15);
  // Nothing read twice: the cut leases resumed at the whole lease's checkpoint.
  expect(log.deliveries).toHaveLength(40 * 15);
  // Every instance handled a share of the events written after the cut.
  const after = log.deliveries.filter((d) => d.version > 5);
  for (const name of ['A', 'B', 'C', 'D']) expect(after.filter((d) => d.instance === name).length).toBeGreaterThan(0);
}, 60_000);
