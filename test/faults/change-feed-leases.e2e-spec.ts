/*
 * Lease writes under faults, through the fault proxy: 429s with x-ms-retry-after-ms and a lease write that
 * hangs. A lease write never outlasts the safety margin (it times out and is retried), a renewal never waits
 * behind a checkpoint, and the reader keeps its range: every event handled once, in order.
 */
import type { ProxiedRequest } from '../../src/modules/embedded-cosmos/index.js';
import { gate, faultyCosmosPerFile } from '../support/faults.js';
import { DeliveryLog, encode, eventually, Recorder, startInstance, type Instance } from '../support/subscriptions.js';

const fixture = faultyCosmosPerFile();
let tests = 0;

const leaseWrite = (r: ProxiedRequest) => r.kind === 'write' && /\/colls\/leases-faults-\d+\/docs\/lease/.test(r.path);

async function start(log: DeliveryLog): Promise<Instance> {
  const instance = await startInstance({
    name: 'A',
    endpoint: fixture.faulty.proxy.endpoint,
    key: fixture.faulty.cosmos.key,
    databaseId: fixture.faulty.events.database.id,
    subscribers: [Recorder],
    log,
    options: { leasesContainerId: `leases-faults-${++tests}` },
  });
  fixture.instances.push(instance);
  await eventually('the reader holds its range', () => instance.subscriptions.status()[0].ownedRanges.length === 1);
  return instance;
}

const versionsOf = (log: DeliveryLog, aggregateId: string) => log.of('recorder').filter((d) => d.aggregateId === aggregateId).map((d) => d.version);

it('keeps its range and handles every event once under 429s with x-ms-retry-after-ms on lease writes', async () => {
  const log = new DeliveryLog();
  const instance = await start(log);
  const rule = fixture.faulty.proxy.addRule({ match: leaseWrite, probability: 0.5, times: 30, action: { type: 'status', status: 429, retryAfterMs: 5 } });
  for (let v = 1; v <= 20; v++) await fixture.store.save('Throttled/1', [{ version: v, data: encode({ v }) }]);
  await instance.subscriptions.waitForCatchUp('recorder', { timeoutMs: 15_000 });
  expect(rule.fired).toBeGreaterThan(0);
  expect(versionsOf(log, 'Throttled/1')).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  expect(instance.subscriptions.status()[0].ownedRanges).toHaveLength(1);
});

it('times a hanging lease write out and goes on, keeping its range', async () => {
  const log = new DeliveryLog();
  const instance = await start(log);
  const held = gate();
  const rule = fixture.faulty.proxy.addRule({ match: leaseWrite, times: 1, action: { type: 'latency', until: held.promise } });
  for (let v = 1; v <= 10; v++) await fixture.store.save('Hung/1', [{ version: v, data: encode({ v }) }]);
  await instance.subscriptions.waitForCatchUp('recorder', { timeoutMs: 15_000 });
  expect(rule.fired).toBe(1);
  expect(versionsOf(log, 'Hung/1')).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
  expect(instance.subscriptions.status()[0].ownedRanges).toHaveLength(1);
  held.open();
});

it('renews its lease while the leases listing is throttled: the range is never let go', async () => {
  const log = new DeliveryLog();
  const instance = await start(log);
  const container = `leases-faults-${tests}`;
  const listing = (r: ProxiedRequest) => r.kind === 'query' && r.path.includes(`/colls/${container}/docs`) && r.partitionKey === 'recorder';
  // Every listing is throttled with a retry-after the SDK honours, longer in all than the lease (3 s under FAST).
  const rule = fixture.faulty.proxy.addRule({ match: listing, action: { type: 'status', status: 429, retryAfterMs: 1_000 } });
  const renewals = fixture.faulty.proxy.count({ kind: 'write' });
  let dropped = false;
  const watch = setInterval(() => {
    if (instance.subscriptions.status()[0].ownedRanges.length !== 1) dropped = true;
  }, 50);
  try {
    for (let v = 1; v <= 5; v++) await fixture.store.save('ListThrottled/1', [{ version: v, data: encode({ v }) }]);
    await eventually('the events are handled', () => versionsOf(log, 'ListThrottled/1').length >= 5, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    for (let v = 6; v <= 10; v++) await fixture.store.save('ListThrottled/1', [{ version: v, data: encode({ v }) }]);
    await eventually('the later events are handled', () => versionsOf(log, 'ListThrottled/1').length >= 10, 10_000);
  } finally {
    clearInterval(watch);
  }
  expect(rule.fired).toBeGreaterThan(3);
  expect(fixture.faulty.proxy.count({ kind: 'write' })).toBeGreaterThan(renewals);
  expect(dropped).toBe(false);
  expect(versionsOf(log, 'ListThrottled/1')).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
}, 60_000);
