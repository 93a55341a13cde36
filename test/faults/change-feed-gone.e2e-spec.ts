/*
 * 410 (Gone) answers on change feed reads, through the fault proxy. @azure/cosmos 4.9 treats only sub-status
 * 1002/1007 as a split; any other 410 leaves that range's position empty in the continuation it hands back.
 * Whatever the sub-status, a reader must never deliver handled events again: it checkpoints only after a
 * page answered 200 or 304, and reads again from its last good position otherwise.
 */
import type { ProxiedRequest } from '../../src/modules/embedded-cosmos/index.js';
import { faultyCosmosPerFile } from '../support/faults.js';
import { DeliveryLog, encode, eventually, Recorder, startInstance } from '../support/subscriptions.js';

const fixture = faultyCosmosPerFile();
let tests = 0;

/** A change feed read of the events container (not a lease, not a metadata request). */
const changeFeedRead = (r: ProxiedRequest) =>
  r.kind === 'feed' && /\/colls\/events\/docs$/.test(r.path) && String(r.headers['a-im'] ?? '').toLowerCase().includes('incremental');

const writeVersions = async (aggregateId: string, from: number, to: number) => {
  for (let version = from; version <= to; version++) await fixture.store.save(aggregateId, [{ version, data: encode({ version }) }]);
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
      endpoint: fixture.faulty.proxy.endpoint,
      key: fixture.faulty.cosmos.key,
      databaseId: fixture.faulty.events.database.id,
      subscribers: [Recorder],
      log,
      options: { leasesContainerId: `leases-gone-${tests}` },
    });
    fixture.instances.push(instance);
    await writeVersions(aggregateId, 1, 5);
    await eventually('the first five are handled', () => log.of('recorder').filter((d) => d.aggregateId === aggregateId).length >= 5);
    await instance.subscriptions.waitForCatchUp('recorder', { timeoutMs: 5_000 });

    const rule = fixture.faulty.proxy.addRule({ match: changeFeedRead, times: 3, action: { type: 'status', status: 410, subStatus } });
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
      endpoint: fixture.faulty.proxy.endpoint,
      key: fixture.faulty.cosmos.key,
      databaseId: fixture.faulty.events.database.id,
      subscribers: [Recorder],
      log,
      options: { leasesContainerId: `leases-gone-${tests}` },
    });
    fixture.instances.push(instance);
    await writeVersions(aggregateId, 1, 5);
    await instance.subscriptions.waitForCatchUp('recorder', { timeoutMs: 10_000 });
    const rule = fixture.faulty.proxy.addRule({ match: changeFeedRead, times: 3, action: { type: 'truncate' } });
    await writeVersions(aggregateId, 6, 10);
    await eventually('three answers were cut', () => rule.fired >= 3);
    await instance.subscriptions.waitForCatchUp('recorder', { timeoutMs: 10_000 });
    expect(log.of('recorder').filter((d) => d.aggregateId === aggregateId).map((d) => d.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });
});

describe("a 410 on a group's first page", () => {
  // Last in this file: it splits the events container.
  it('never checkpoints a range the SDK read without a position (a fresh lease over two ranges, from a time)', async () => {
    const log = new DeliveryLog();
    const leasesContainerId = `leases-gone-${++tests}`;
    const options = { name: 'A', endpoint: fixture.faulty.proxy.endpoint, key: fixture.faulty.cosmos.key, databaseId: fixture.faulty.events.database.id, subscribers: [Recorder], log, options: { leasesContainerId } };
    const a = await startInstance(options);
    fixture.instances.push(a);
    const aggregates = Array.from({ length: 24 }, (_, i) => `First/${tests}/${i}`);
    for (const id of aggregates) await writeVersions(id, 1, 1);
    await a.subscriptions.waitForCatchUp('recorder', { timeoutMs: 10_000 });
    // The lease keeps its bounds over the split: after a rebuild it is a fresh lease over both children.
    const { children } = fixture.faulty.cosmos.splitPartition(fixture.faulty.events.database.id, 'events');
    await new Promise((resolve) => setTimeout(resolve, 1_005 - (Date.now() % 1_000)));
    const from = new Date();
    for (const id of aggregates) await writeVersions(id, 2, 2);

    // The first read of the first child from the start time answers 410 (no sub-status: not a split for the
    // SDK, which leaves that child without a position); the second child answers 200 with its events. Every
    // change feed read after that one fails, so whatever was checkpointed from that page stays.
    const first = children[0].id;
    let gone: ProxiedRequest | undefined;
    let after = 0;
    const fresh = (r: ProxiedRequest) =>
      changeFeedRead(r) && r.headers['x-ms-documentdb-partitionkeyrangeid'] === first && r.headers['if-modified-since'] !== undefined && r.headers['if-none-match'] === undefined;
    const rule = fixture.faulty.proxy.addRule({
      match: (r) => {
        if (gone || !fresh(r)) return false;
        gone = r;
        return true;
      },
      times: 1,
      action: { type: 'status', status: 410 },
    });
    fixture.faulty.proxy.addRule({ match: (r) => changeFeedRead(r) && gone !== undefined && r !== gone && r.headers['x-ms-max-item-count'] !== '1' && ++after > 1, action: { type: 'status', status: 503 } });
    const before = log.of('recorder').length;
    await a.subscriptions.rebuild('recorder', { from, timeoutMs: 20_000 });
    await eventually('the first read of the first child answered 410', () => rule.fired === 1, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await a.close();
    fixture.instances.splice(fixture.instances.indexOf(a), 1);
    fixture.faulty.proxy.clearRules();

    // Another instance resumes from the checkpoint: only version 2 of each aggregate is read again.
    const b = await startInstance({ ...options, name: 'B' });
    fixture.instances.push(b);
    await b.subscriptions.waitForCatchUp('recorder', { timeoutMs: 15_000 });
    const again = log.of('recorder').slice(before).filter((d) => d.aggregateId.startsWith(`First/${tests}/`));
    expect(again.filter((d) => d.version === 1)).toEqual([]);
    expect(new Set(again.map((d) => d.aggregateId))).toEqual(new Set(aggregates));
  }, 90_000);
});
