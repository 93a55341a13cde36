/*
 * 410 (Gone) answers on change feed reads, through the fault proxy. @azure/cosmos 4.9 treats only sub-status
 * 1002/1007 as a split; any other 410 leaves that range's position empty in the continuation it hands back.
 * Whatever the sub-status, a reader must never deliver handled events again: it checkpoints only after a
 * page answered 200 or 304, and reads again from its last good position otherwise.
 */
import { CosmosEventStore } from '../../src/index.js';
import type { ProxiedRequest } from '../../src/modules/embedded-cosmos/index.js';
import { startFaultyCosmos, type FaultyCosmos } from '../support/faults.js';
import { DeliveryLog, encode, eventually, Recorder, startInstance, type Instance } from '../support/subscriptions.js';

let faulty: FaultyCosmos;
let store: CosmosEventStore;
const instances: Instance[] = [];
let tests = 0;

beforeAll(async () => {
  faulty = await startFaultyCosmos();
  store = new CosmosEventStore(faulty.directEvents);
});

afterEach(async () => {
  faulty.proxy.clearRules();
  await Promise.all(instances.splice(0).map((i) => i.close()));
});

afterAll(async () => {
  await faulty?.close();
});

/** A change feed read of the events container (not a lease, not a metadata request). */
const changeFeedRead = (r: ProxiedRequest) =>
  r.kind === 'feed' && /\/colls\/events\/docs$/.test(r.path) && String(r.headers['a-im'] ?? '').toLowerCase().includes('incremental');

const writeVersions = async (aggregateId: string, from: number, to: number) => {
  for (let version = from; version <= to; version++) await store.save(aggregateId, [{ version, data: encode({ version }) }]);
};

describe.each([
  ['no sub-status', undefined],
  ['sub-status 1000', 1000],
  ['sub-status 1002 (partition key range gone)', 1002],
  ['sub-status 1007 (completing split)', 1007],
  ['sub-status 1008 (completing partition migration)', 1008],
])('a 410 with %s on a change feed read', (_label, subStatus) => {
  it('delivers nothing twice and nothing out of order', async () => {
    const log = new DeliveryLog();
    const aggregateId = `Gone/${++tests}`;
    const instance = await startInstance({
      name: 'A',
      endpoint: faulty.proxy.endpoint,
      key: faulty.cosmos.key,
      databaseId: faulty.events.database.id,
      subscribers: [Recorder],
      log,
      options: { leasesContainerId: `leases-gone-${tests}` },
    });
    instances.push(instance);
    await writeVersions(aggregateId, 1, 5);
    await eventually('the first five are handled', () => log.of('recorder').filter((d) => d.aggregateId === aggregateId).length >= 5);
    await instance.subscriptions.waitForCatchUp('recorder', { timeoutMs: 5_000 });

    const rule = faulty.proxy.addRule({ match: changeFeedRead, times: 3, action: { type: 'status', status: 410, subStatus } });
    await eventually('the proxy answered 410 three times', () => rule.fired >= 3);
    await writeVersions(aggregateId, 6, 10);
    await instance.subscriptions.waitForCatchUp('recorder', { timeoutMs: 10_000 });

    const versions = log.of('recorder').filter((d) => d.aggregateId === aggregateId).map((d) => d.version);
    expect(versions).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });
});

describe('a change feed answer cut mid-body', () => {
  it('is read again from the last good position: nothing twice, nothing skipped', async () => {
    const log = new DeliveryLog();
    const aggregateId = `Cut/${++tests}`;
    const instance = await startInstance({
      name: 'A',
      endpoint: faulty.proxy.endpoint,
      key: faulty.cosmos.key,
      databaseId: faulty.events.database.id,
      subscribers: [Recorder],
      log,
      options: { leasesContainerId: `leases-gone-${tests}` },
    });
    instances.push(instance);
    await writeVersions(aggregateId, 1, 5);
    await instance.subscriptions.waitForCatchUp('recorder', { timeoutMs: 10_000 });
    const rule = faulty.proxy.addRule({ match: changeFeedRead, times: 3, action: { type: 'truncate' } });
    await writeVersions(aggregateId, 6, 10);
    await eventually('three answers were cut', () => rule.fired >= 3);
    await instance.subscriptions.waitForCatchUp('recorder', { timeoutMs: 10_000 });
    expect(log.of('recorder').filter((d) => d.aggregateId === aggregateId).map((d) => d.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });
});
