import { CosmosEventStore, CosmosOpaqueStore } from '../../src/index.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import { describeRepositoryContract } from './repository-contract.js';

let fixture: CosmosFixture;

beforeAll(async () => {
  fixture = await startCosmosFixture();
});

afterAll(async () => {
  await fixture.close();
});

describeRepositoryContract('Cosmos DB stores on the embedded server', async () => {
  const opaque = new CosmosOpaqueStore(fixture.aggregates);
  return { events: new CosmosEventStore(fixture.events, { opaqueStore: opaque }), opaque };
});
