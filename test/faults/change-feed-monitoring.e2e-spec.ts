/*
 * Monitoring costs no metadata requests (Azure throttles those at high rates): `lag()` and `waitForCatchUp`
 * send no partition key range listing and no container read (one change feed request per range a lease's
 * checkpoint names); idle readers send change feed requests only. A new instance's first look is no dearer,
 * once its process ran the start-up self-test. Counted at the fault proxy.
 */
import { CosmosEventStore } from '../../src/index.js';
import { checkSdkInternals } from '../../src/modules/subscriptions/sdk-adapter.js';
import { SubscriptionsManager } from '../../src/modules/subscriptions/subscriptions-manager.js';
import { startFaultyCosmos, type FaultyCosmos } from '../support/faults.js';
import { DeliveryLog, encode, Recorder, startInstance, type Instance } from '../support/subscriptions.js';

// The reader polls every 20 ms: a quiet spell of the proxy's default 25 ms may never come while it runs (a CI
// run on Node 24 waited out the test's timeout so); 5 ms still lets a request sent beside a call arrive.
const QUIET_MS = 5;

let faulty: FaultyCosmos;
let instance: Instance | undefined;

afterAll(async () => {
  await instance?.close();
  await faulty?.close();
});

it('lag() and waitForCatchUp make no metadata request; idle readers neither', async () => {
  faulty = await startFaultyCosmos();
  const store = new CosmosEventStore(faulty.directEvents);
  const log = new DeliveryLog();
  instance = await startInstance({
    name: 'A',
    endpoint: faulty.proxy.endpoint,
    key: faulty.cosmos.key,
    databaseId: faulty.events.database.id,
    subscribers: [Recorder],
    log,
  });
  for (let i = 0; i < 5; i++) await store.save(`M/${i}`, [{ version: 1, data: encode({ i }) }]);
  await instance.subscriptions.waitForCatchUp('recorder', { timeoutMs: 10_000 });

  await faulty.proxy.settle(QUIET_MS);
  faulty.proxy.clearRecords();
  for (let i = 0; i < 3; i++) await instance.subscriptions.lag('recorder');
  await instance.subscriptions.waitForCatchUp('recorder', { timeoutMs: 5_000 });
  await faulty.proxy.settle(QUIET_MS);
  expect(faulty.proxy.count({ kind: 'metadata' })).toBe(0);

  // Idle: the readers' polls are change feed requests only.
  faulty.proxy.clearRecords();
  await new Promise((resolve) => setTimeout(resolve, 300));
  await faulty.proxy.settle(QUIET_MS);
  expect(faulty.proxy.count({ kind: 'metadata' })).toBe(0);
});

it("a new instance's first lag() is one lease query and a change feed request per lease: no query plan, no metadata", async () => {
  // The reader stops (checkpoints kept), so that only the new instance's requests reach the proxy.
  await instance?.close();
  instance = undefined;
  // Another client of the same process, as a second module would have; its start-up self-test ran, as
  // `SubscriptionsManager.onApplicationBootstrap` runs it.
  await checkSdkInternals(faulty.events);
  const leases = faulty.client.database(faulty.events.database.id).container('leases');
  const manager = new SubscriptionsManager(faulty.events, leases, { autoStart: false, ensure: false });
  manager.register(new Recorder(new DeliveryLog(), 'new'));
  await faulty.proxy.settle();
  faulty.proxy.clearRecords();
  const [lag] = await manager.lag('recorder');
  await faulty.proxy.settle();
  expect(lag.estimatedPending).toBe(0);
  expect({ metadata: faulty.proxy.count({ kind: 'metadata' }), plans: faulty.proxy.count({ kind: 'query-plan' }), queries: faulty.proxy.count({ kind: 'query' }) }).toEqual({
    metadata: 0,
    plans: 0,
    queries: 1,
  });
  expect(faulty.proxy.count({ kind: 'feed' })).toBe(lag.ranges.length);
});
