/*
 * The events container holds, beside each aggregate's events, one "tip" document (id `tip`, same partition
 * key `a`, no numeric `v`) rewritten by every command. It is not an event: readers never deliver it, never
 * take it for a version, and do not warn about it.
 */
import { CosmosEventStore } from '../../src/index.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import { DeliveryLog, encode, eventually, Recorder, startInstance, type Instance } from '../support/subscriptions.js';

let fixture: CosmosFixture;
let instance: Instance | undefined;

beforeAll(async () => {
  fixture = await startCosmosFixture();
});

afterAll(async () => {
  await instance?.close();
  await fixture?.close();
});

it('skips tip documents silently and delivers the events around them in order', async () => {
  const store = new CosmosEventStore(fixture.events);
  const log = new DeliveryLog();
  instance = await startInstance({
    name: 'A',
    endpoint: fixture.cosmos.endpoint,
    key: fixture.cosmos.key,
    databaseId: fixture.events.database.id,
    subscribers: [Recorder],
    log,
  });
  const aggregateId = 'Account/tip-1';
  await store.save(aggregateId, [{ version: 1, data: encode({ n: 1 }) }]);
  await fixture.events.items.upsert({ id: 'tip', a: aggregateId, version: 1, state: { n: 1 } });
  await store.save(aggregateId, [{ version: 2, data: encode({ n: 2 }) }]);
  await fixture.events.items.upsert({ id: 'tip', a: aggregateId, version: 2, state: { n: 2 } });
  // A tip of an aggregate with a string `v`: still not an event.
  await fixture.events.items.upsert({ id: 'tip', a: 'Account/tip-2', v: '3' });
  await instance.subscriptions.waitForCatchUp('recorder', { timeoutMs: 10_000 });

  await eventually('both events are handled', () => log.of('recorder').length >= 2);
  expect(log.of('recorder').map((d) => `${d.aggregateId}@${d.version}`)).toEqual([`${aggregateId}@1`, `${aggregateId}@2`]);
  expect(instance.logger.text).not.toMatch(/not events/);
});
