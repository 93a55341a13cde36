/*
 * Subscriptions across a partition merge, emulated in the embedded server: a group started on two physical
 * partitions (two leases) goes on after they merge into one. The merged range is covered by the union of the
 * two leases, so no new lease is made over it: nothing is read again from the start, and no two readers ever
 * handle the same aggregate.
 */
import { CosmosEventStore } from '../../src/index.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import { DeliveryLog, eventually, expectAtLeastOnceInOrder, Recorder, startInstance, writeConcurrently, type Instance } from '../support/subscriptions.js';

interface StoredLease {
  id: string;
  feedRange: { minInclusive: string; maxExclusive: string };
}

let fixture: CosmosFixture;
let store: CosmosEventStore;
const instances: Instance[] = [];

beforeAll(async () => {
  fixture = await startCosmosFixture({ partitionKeyRanges: 2 });
  store = new CosmosEventStore(fixture.events);
});

afterAll(async () => {
  await Promise.all(instances.splice(0).map((i) => i.close()));
  await fixture?.close();
});

async function instance(name: string, log: DeliveryLog): Promise<Instance> {
  const started = await startInstance({
    name,
    endpoint: fixture.cosmos.endpoint,
    key: fixture.cosmos.key,
    databaseId: fixture.events.database.id,
    subscribers: [Recorder],
    log,
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

it('makes no overlapping lease and delivers nothing twice after two partitions merge', async () => {
  const log = new DeliveryLog();
  const aggregates = Array.from({ length: 16 }, (_, i) => `Order/m${i}`);
  const a = await instance('A', log);
  await writeConcurrently(store, aggregates, 1, 5, { maxChunk: 2 });
  await a.subscriptions.waitForCatchUp('recorder', { timeoutMs: 20_000 });
  const before = await leases();
  expect(before).toHaveLength(2);

  const { merged } = fixture.cosmos.mergePartitions(fixture.events.database.id, fixture.events.id);
  expect(merged).toMatchObject({ minInclusive: '', maxExclusive: 'FF' });
  await writeConcurrently(store, aggregates, 6, 10, { maxChunk: 2 });
  // A second instance starts after the merge: it sees one feed range, covered by the two leases together.
  const b = await instance('B', log);
  await eventually('both instances read', () => a.subscriptions.status()[0].ownedRanges.length === 1 && b.subscriptions.status()[0].ownedRanges.length === 1, 20_000);
  await writeConcurrently(store, aggregates, 11, 15, { maxChunk: 2 });
  await b.subscriptions.waitForCatchUp('recorder', { timeoutMs: 20_000 });

  expect((await leases()).map((l) => l.id)).toEqual(before.map((l) => l.id));
  expectAtLeastOnceInOrder(log.deliveries, aggregates, 15);
  expect(log.deliveries).toHaveLength(16 * 15);
}, 60_000);
