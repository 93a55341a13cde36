/*
 * A tip must not outlive its events: it holds the state they make and the idempotency keys. When every event
 * a write stores expires, the tip written with them expires with the newest; an expired tip reads as none.
 */
import { randomUUID } from 'node:crypto';
import { CosmosEventStore, TIP_DOCUMENT_ID, type EventRecord } from '../../src/index.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';

let fixture: CosmosFixture;
beforeAll(async () => {
  fixture = await startCosmosFixture();
});
afterAll(() => fixture?.close());

const now = () => Math.floor(Date.now() / 1000);
const record = (version: number, ttl?: number): EventRecord => ({ version, data: new Uint8Array([version]), ...(ttl && { ttl }) });

it('gives the tip the expiry of the events written with it, and none when an event does not expire', async () => {
  const store = new CosmosEventStore(fixture.events);
  const expiring = `Tip/${randomUUID()}`;
  const expiry = now() + 600;
  await store.saveWithTip(expiring, [record(1, expiry - 10), record(2, expiry)], { version: 2, state: {} });
  const { resource } = await fixture.events.item(TIP_DOCUMENT_ID, expiring).read<{ t?: number; ttl?: number }>();
  expect(resource?.t).toBe(expiry);
  expect(resource?.ttl).toBeGreaterThan(590);

  const lasting = `Tip/${randomUUID()}`;
  await store.saveWithTip(lasting, [record(1, expiry), record(2)], { version: 2, state: {} });
  const { resource: kept } = await fixture.events.item(TIP_DOCUMENT_ID, lasting).read<{ t?: number; ttl?: number }>();
  expect(kept?.t).toBeUndefined();
  expect(kept?.ttl).toBeUndefined();
});

it('reads an expired tip as none (Cosmos DB no longer answers it; the embedded server keeps it)', async () => {
  const store = new CosmosEventStore(fixture.events);
  const stream = `Tip/${randomUUID()}`;
  await fixture.events.items.create({ id: TIP_DOCUMENT_ID, a: stream, tip: { version: 1, state: {} }, w: 'x', t: now() - 5 });
  expect(await store.readTip(stream)).toBeUndefined();
});
