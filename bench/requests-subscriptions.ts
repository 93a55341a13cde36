/**
 * The subscriptions' looks at a consumer group for `bench/requests.bench.ts`: `lag()` and `waitForCatchUp`
 * (caught up, so one look), on a group of 4 leases that another instance read to the end and then stopped,
 * so that no reader polls the change feed while a call is counted. Their minimum: one query for the
 * leases, one change feed request per lease, and no metadata request (partition key ranges, container
 * reads: Azure throttles those).
 */
import { Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { OnStoredEvent, Subscriber } from '../src/index.js';
import { SubscriptionsManager } from '../src/modules/subscriptions/subscriptions-manager.js';
import { ensureContainer } from '../src/modules/cosmos/index.js';
import type { CaseGroup, RequestCase } from './requests.bench.js';

const LEASES = 4;

@Subscriber({ name: 'requests' })
class Handled {
  @OnStoredEvent()
  handle(): void {}
}

export const subscriptionCases: CaseGroup = async ({ database, store }) => {
  Logger.overrideLogger(['error']);
  const events = database.container('events');
  await ensureContainer(database, 'leases', '/group', 'the requests benchmark');
  const leases = database.container('leases');
  const options = { leases: LEASES, ensure: false, autoStart: false, pollIntervalMs: 10 };
  for (let a = 0; a < 20; a++) await store.save(`Sub/${randomUUID()}`, [{ version: 1, data: new TextEncoder().encode('{}') }]);
  // Another instance creates the leases and reads everything, then stops: the checkpoints stay.
  const reader = new SubscriptionsManager(events, leases, { ...options, instanceId: 'reader' });
  reader.register(new Handled());
  await reader.start();
  await reader.waitForCatchUp('requests', { timeoutMs: 30_000 });
  await reader.stop();
  // This instance reads nothing: it only looks at the group.
  const looking = new SubscriptionsManager(events, leases, { ...options, instanceId: 'looking' });
  looking.register(new Handled());
  const fresh = () => {
    const manager = new SubscriptionsManager(events, leases, { ...options, instanceId: `new-${randomUUID()}` });
    manager.register(new Handled());
    return manager;
  };
  const minimumIs = `1 query + ${LEASES} feed, no metadata`;
  return [
    { label: `Subscriptions.lag(), ${LEASES} leases`, minimum: 1 + LEASES, minimumIs, run: () => looking.lag('requests') },
    { label: `Subscriptions.lag(), ${LEASES} leases, a new instance's first`, minimum: 1 + LEASES, minimumIs, run: () => fresh().lag('requests') },
    {
      label: `Subscriptions.waitForCatchUp, caught up, ${LEASES} leases`,
      minimum: 1 + LEASES,
      minimumIs,
      run: () => looking.waitForCatchUp('requests', { timeoutMs: 5_000 }),
    },
  ] satisfies RequestCase[];
};
