/*
 * Issue 16 part 1 in protosource mode: the event's ids go beside the protobuf bytes, in the document's field
 * `m` (Go ignores fields it does not know), from the same event context as the JSON repository's; the bytes
 * Go reads (`d`) are the same as without it, and EventRecord.metadata round-trips through both stores.
 */
import type { Container } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { CosmosEventStore, CosmosOpaqueStore, runInHandlerContext, runWithEventContext, ValidationError, type SnapshotTailStore } from '../../src/index.js';
import { ProtosourceRepository } from '../../src/protosource.js';
import { InMemoryEventStore } from '../../src/testing.js';
import { orderCommands, orderDefinition } from '../../example/src/modules/protosource-orders/order.domain.js';
import type { Order } from '../../example/src/modules/protosource-orders/gen/example-order/order_pb.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';

let fixture: CosmosFixture;
let events: Container;

beforeAll(async () => {
  fixture = await startCosmosFixture();
  events = fixture.events;
});
afterAll(() => fixture?.close());

const stream = (id: string) => `example_app_order_v1#${id}`;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function rawEvents(id: string): Promise<Array<Record<string, unknown>>> {
  const { resources } = await events.items
    .query<Record<string, unknown>>({ query: 'SELECT * FROM c WHERE c.a = @a ORDER BY c.v', parameters: [{ name: '@a', value: stream(id) }] }, { partitionKey: stream(id) })
    .fetchAll();
  return resources;
}

describe('ProtosourceRepository', () => {
  const repository = () => new ProtosourceRepository<Order>(orderDefinition, { events: new CosmosEventStore(events), opaque: new CosmosOpaqueStore(fixture.aggregates) });

  it('stores the event context ids in m: the correlation id, causation id and a fresh event id per event', async () => {
    const orders = repository();
    const id = `o-${randomUUID()}`;
    await runWithEventContext({ correlationId: 'corr-1' }, () => orders.apply(orderCommands.create({ id, customerId: 'c-1', customerName: 'Ann' } as never, 'alice')));
    const [created] = await rawEvents(id);
    const m = created.m as { eventId: string; correlationId: string; causationId: string };
    expect(m).toEqual({ eventId: expect.stringMatching(UUID), correlationId: 'corr-1', causationId: 'corr-1' });
    // A command a handler issues: the handled event's correlation id, caused by it.
    await runInHandlerContext({ eventId: m.eventId, correlationId: 'corr-1' }, () =>
      orders.apply(orderCommands.addItem({ id, item: { itemId: 'sku-1', description: 'Book', priceCents: 1250n, quantity: 2 } } as never, 'bob')),
    );
    const [, added] = await rawEvents(id);
    expect(added.m).toEqual({ eventId: expect.stringMatching(UUID), correlationId: 'corr-1', causationId: m.eventId });
    expect((added.m as { eventId: string }).eventId).not.toBe(m.eventId);
    // Without a context: a fresh correlation id, which is its own cause.
    const other = `o-${randomUUID()}`;
    await orders.apply(orderCommands.create({ id: other, customerId: 'c-1', customerName: 'Ann' } as never, 'alice'));
    const fresh = (await rawEvents(other))[0].m as { correlationId: string; causationId: string };
    expect(fresh.correlationId).toMatch(UUID);
    expect(fresh.causationId).toBe(fresh.correlationId);
    // The store reads it back; the aggregate loads as before.
    const { records } = await new CosmosEventStore(events).load(stream(id));
    expect(records.map((r) => r.metadata?.causationId)).toEqual(['corr-1', m.eventId]);
    expect(Number((await orders.load(id)).version)).toBe(2);
  });
});

describe.each([
  ['in-memory store', (): SnapshotTailStore => new InMemoryEventStore()],
  ['Cosmos DB store on the embedded server', (): SnapshotTailStore => new CosmosEventStore(events)],
])('EventRecord.metadata on the %s', (_name, open) => {
  it('round-trips through save, load and loadTail; absent stays absent', async () => {
    const store = open();
    const id = `meta-${randomUUID()}`;
    const data = new Uint8Array([1, 2, 3]);
    await store.save(id, [
      { version: 1, data, metadata: { eventId: 'e-1', correlationId: 'c-1', causationId: 'c-1' } },
      { version: 2, data },
      { version: 3, data, metadata: { correlationId: 'c-2' } },
    ]);
    const { records } = await store.load(id);
    expect(records.map((r) => r.metadata)).toEqual([{ eventId: 'e-1', correlationId: 'c-1', causationId: 'c-1' }, undefined, { correlationId: 'c-2' }]);
    expect(records.every((r) => Buffer.from(r.data).equals(Buffer.from(data)))).toBe(true);
    expect((await store.loadTail(id, 1)).records[0].metadata).toEqual({ correlationId: 'c-2' });
  });

  it('refuses metadata that is not the three ids as strings of 1 to 128 characters', async () => {
    const store = open();
    for (const metadata of [{ eventId: '' }, { eventId: 'x'.repeat(129) }, { tenant: 't' }, { eventId: 5 }, 'e-1', null]) {
      await expect(store.save(`bad-${randomUUID()}`, [{ version: 1, data: new Uint8Array(0), metadata } as never])).rejects.toBeInstanceOf(ValidationError);
    }
  });
});
