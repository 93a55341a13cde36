/*
 * The subscriptions check the @azure/cosmos internals they rely on when the application starts: an SDK that
 * changed one (here: feed ranges that no longer carry their bounds as minInclusive/maxExclusive) fails the
 * start naming the part, instead of starting readers that would misbehave.
 */
import { Container } from '@azure/cosmos';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import { DeliveryLog, Recorder, startInstance } from '../support/subscriptions.js';

let fixture: CosmosFixture;
beforeAll(async () => {
  fixture = await startCosmosFixture();
});
afterAll(() => fixture?.close());

it('fails the start naming the SDK part that changed', async () => {
  const prototype = Container.prototype as unknown as { getFeedRanges: () => Promise<unknown[]> };
  const getFeedRanges = prototype.getFeedRanges;
  // A newer SDK's feed range: the bounds under other names.
  prototype.getFeedRanges = async () => [{ min: '', max: 'FF' }];
  try {
    const starting = startInstance({
      name: 'A',
      endpoint: fixture.cosmos.endpoint,
      key: fixture.cosmos.key,
      databaseId: fixture.events.database.id,
      subscribers: [Recorder],
      log: new DeliveryLog(),
    });
    await expect(starting).rejects.toMatchObject({ name: 'SdkInternalsError', part: 'feed range class' });
  } finally {
    prototype.getFeedRanges = getFeedRanges;
  }
});

it('starts when the internals are as expected', async () => {
  const instance = await startInstance({
    name: 'B',
    endpoint: fixture.cosmos.endpoint,
    key: fixture.cosmos.key,
    databaseId: fixture.events.database.id,
    subscribers: [Recorder],
    log: new DeliveryLog(),
  });
  await instance.close();
});
