/*
 * The protosource repository mode against documents as Go's protosource writes them (built here from the
 * facts: stream ids, event field numbers, type URLs, key formats; never from our writer), and what we write
 * read back raw and decoded by hand, as Go's readers decode it.
 */
import type { Container } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ConcurrencyError, CosmosEventStore, CosmosOpaqueStore, NotFoundError } from '../../src/index.js';
import { ProtosourceRepository, isProtosourceCommandError, type ProtosourceCommandError } from '../../src/protosource.js';
import { orderCommands, orderDefinition } from '../../example/src/modules/protosource-orders/order.domain.js';
import { State, type Order } from '../../example/src/modules/protosource-orders/gen/example-order/order_pb.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import { anyOf, eventHead, message, num, parse, str } from './wire.js';

type Raw = Record<string, unknown>;

let fixture: CosmosFixture;
let events: Container;
let aggregates: Container;
let orders: ProtosourceRepository<Order>;

beforeAll(async () => {
  fixture = await startCosmosFixture();
  ({ events, aggregates } = fixture);
  orders = new ProtosourceRepository(orderDefinition, { events: new CosmosEventStore(events), opaque: new CosmosOpaqueStore(aggregates) });
});

afterAll(async () => {
  await fixture?.close();
});

const AT = 1_700_000_000_000_000n;
const stream = (id: string) => `example_app_order_v1#${id}`;
const pkOf = (id: string) => `example_app_order_v1#order#id#${id}`;
const own = (doc: Raw) => Object.fromEntries(Object.entries(doc).filter(([k]) => !k.startsWith('_')));
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
const T = 'example.app.order.v1';

/** An events-container document as Go's cosmosdbstore writes it. */
async function goEvent(id: string, version: number, payload: Uint8Array): Promise<void> {
  await events.items.create({ id: String(version), a: stream(id), v: version, d: b64(payload) });
}

async function rawEvents(id: string): Promise<Raw[]> {
  const { resources } = await events.items
    .query<Raw>({ query: 'SELECT * FROM c WHERE c.a = @a ORDER BY c.v', parameters: [{ name: '@a', value: stream(id) }] }, { partitionKey: stream(id) })
    .fetchAll();
  return resources.map(own);
}

async function rawViews(id: string): Promise<Raw[]> {
  const pk = pkOf(id);
  const { resources } = await aggregates.items
    .query<Raw>({ query: 'SELECT * FROM c WHERE c.pk = @pk', parameters: [{ name: '@pk', value: pk }] }, { partitionKey: pk })
    .fetchAll();
  return resources.map(own).sort((a, b) => (String(a.sk) < String(b.sk) ? -1 : 1));
}

/** A Go reader's view of `d`: gunzip when gzipped, then the Any's type URL and the event's fields. */
function goDecode(d: unknown): { typeUrl: string; fields: ReturnType<typeof parse> } {
  let bytes: Uint8Array = Buffer.from(d as string, 'base64');
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = new Uint8Array(gunzipSync(bytes));
  const any = parse(bytes);
  return { typeUrl: str(any.get(1)?.[0]), fields: parse(any.get(2)?.[0] as Uint8Array) };
}


async function refusal(p: Promise<unknown>): Promise<ProtosourceCommandError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isProtosourceCommandError(err)) throw new Error(`expected a ProtosourceCommandError, got ${String(err)}`);
  return err;
}

describe('reading what Go wrote', () => {
  it('loads a Go stream: Created, ItemAdded (gzip-compressed), TagAdded', async () => {
    const id = `o-${randomUUID()}`;
    await goEvent(id, 1, anyOf(`${T}.Created`, message(...eventHead(id, 1, AT, 'alice'), [5, 'c-1'], [6, 'Ann'])));
    const longDescription = 'd'.repeat(400);
    const item = message([1, 'sku-1'], [2, longDescription], [3, 1250], [4, 2]);
    await goEvent(id, 2, gzipSync(anyOf(`${T}.ItemAdded`, message(...eventHead(id, 2, AT + 1n, 'bob'), [5, item]))));
    await goEvent(id, 3, anyOf(`${T}.TagAdded`, message(...eventHead(id, 3, AT + 2n, 'bob'), [5, message([1, 'prio'], [2, 'rush'])])));

    const { aggregate: order, version } = await orders.load(id);
    expect(version).toBe(3);
    expect(order).toMatchObject({
      id,
      version: 3n,
      state: State.DRAFT,
      customerId: 'c-1',
      customerName: 'Ann',
      createAt: AT,
      createBy: 'alice',
      modifyAt: AT + 2n,
      modifyBy: 'bob',
      itemCount: 1,
      totalCents: 2500n,
    });
    expect(order.items['sku-1'].description).toBe(longDescription);
    expect(order.tags.prio.value).toBe('rush');
  });

  it('loads from a Go snapshot at 51 with only the tail stored, and applies what follows', async () => {
    const id = `o-${randomUUID()}`;
    const state = message([1, id], [2, 50], [3, State.DRAFT], [4, 'c-7'], [5, 'Zed'], [6, AT], [7, 'alice']);
    await goEvent(id, 51, anyOf(`${T}.Snapshot`, message(...eventHead(id, 51, AT + 51n, 'snapshot@system'), [5, state])));
    await goEvent(id, 52, anyOf(`${T}.ShippingSet`, message(...eventHead(id, 52, AT + 52n, 'bob'), [5, '1 Main St'])));
    const { aggregate: order, version } = await orders.load(id);
    expect(version).toBe(52);
    expect(order).toMatchObject({ id, version: 52n, customerId: 'c-7', customerName: 'Zed', shippingAddress: '1 Main St', createBy: 'alice' });
  });

  it('reads the whole stream when the last 50 events hold no snapshot (written without one), not just the tail', async () => {
    const id = `o-${randomUUID()}`;
    await goEvent(id, 1, anyOf(`${T}.Created`, message(...eventHead(id, 1, AT, 'alice'), [5, 'c-1'], [6, 'Ann'])));
    for (let v = 2; v <= 55; v++) await goEvent(id, v, anyOf(`${T}.TagAdded`, message(...eventHead(id, v, AT + BigInt(v), 'bob'), [5, message([1, `k${v}`], [2, 'v'])])));
    const { aggregate: order, version } = await orders.load(id);
    expect([version, order.customerId, order.createBy, Object.keys(order.tags).length]).toEqual([55, 'c-1', 'alice', 54]);
  });

  it("serves Go's AGG document and finds it by the customer index", async () => {
    const id = `o-${randomUUID()}`;
    const customer = `c-${randomUUID()}`;
    const body = message([1, id], [2, 4], [3, State.PLACED], [4, customer], [5, 'Ann'], [6, AT], [13, AT + 9n]);
    await aggregates.items.create({
      id: 'AGG',
      pk: pkOf(id),
      sk: 'AGG',
      body: b64(body),
      gsi1pk: `example_app_order_v1#order#customer_id#${customer}`,
      gsi1sk: `example_app_order_v1#order#create_at#${AT}`,
    });
    expect(await orders.get(id)).toMatchObject({ id, version: 4n, state: State.PLACED, customerId: customer, placedAt: AT + 9n });
    const found = await orders.query(1, { customer_id: customer });
    expect(found.map((o) => o.id)).toEqual([id]);
    expect(await orders.query(1, { customer_id: customer }, { op: '>', value: { create_at: AT } })).toEqual([]);
    expect((await orders.query(1, { customer_id: customer }, { op: '>=', value: { create_at: AT } })).length).toBe(1);
  });

  it('runs a command on an aggregate Go created, at the next version', async () => {
    const id = `o-${randomUUID()}`;
    await goEvent(id, 1, anyOf(`${T}.Created`, message(...eventHead(id, 1, AT, 'alice'), [5, 'c-1'], [6, 'Ann'])));
    expect(await orders.apply(orderCommands.place({ id, placedAt: 77n } as never, 'bob'))).toBe(2);
    const [, placed] = await rawEvents(id);
    expect(placed).toMatchObject({ id: '2', a: stream(id), v: 2 });
  });
});

describe('what we write is what Go writes', () => {
  it('events: stream id, id = version, the Any of the event with id/version/at/actor in fields 1-4', async () => {
    const id = `o-${randomUUID()}`;
    const before = BigInt(Date.now()) * 1000n;
    await orders.apply(orderCommands.create({ id, customerId: 'c-1', customerName: 'Ann' } as never, 'alice'));
    await orders.apply(orderCommands.addItem({ id, item: { itemId: 'sku-1', description: 'Book', priceCents: 1250n, quantity: 2 } } as never, 'bob'));
    const docs = await rawEvents(id);
    // Go's fields, and `m` (the event's ids), which Go ignores.
    expect(docs.map((d) => Object.keys(d).sort())).toEqual([
      ['a', 'd', 'id', 'm', 'v'],
      ['a', 'd', 'id', 'm', 'v'],
    ]);
    expect(docs.map((d) => [d.id, d.a, d.v])).toEqual([
      ['1', stream(id), 1],
      ['2', stream(id), 2],
    ]);
    const created = goDecode(docs[0].d);
    expect(created.typeUrl).toBe(`type.googleapis.com/${T}.Created`);
    expect(str(created.fields.get(1)?.[0])).toBe(id);
    expect(num(created.fields.get(2)?.[0])).toBe(1n);
    expect(num(created.fields.get(3)?.[0])).toBeGreaterThanOrEqual(before);
    expect(str(created.fields.get(4)?.[0])).toBe('alice');
    expect(str(created.fields.get(5)?.[0])).toBe('c-1');
    expect(str(created.fields.get(6)?.[0])).toBe('Ann');
    const added = goDecode(docs[1].d);
    expect(added.typeUrl).toBe(`type.googleapis.com/${T}.ItemAdded`);
    const item = parse(added.fields.get(5)?.[0] as Uint8Array);
    expect([str(item.get(1)?.[0]), str(item.get(2)?.[0]), num(item.get(3)?.[0]), num(item.get(4)?.[0])]).toEqual(['sku-1', 'Book', 1250n, 2n]);
  });

  it('materialized: AGG and PROJ#OrderSummary with protosource keys, protobuf bodies, no version', async () => {
    const id = `o-${randomUUID()}`;
    await orders.apply(orderCommands.create({ id, customerId: 'c-2', customerName: 'Bo' } as never, 'alice'));
    const created = goDecode((await rawEvents(id))[0].d);
    const createAt = num(created.fields.get(3)?.[0]);
    const [agg, summary] = await rawViews(id);
    expect(Object.keys(agg).sort()).toEqual(['body', 'gsi1pk', 'gsi1sk', 'id', 'pk', 'sk']);
    expect(agg).toMatchObject({
      id: 'AGG',
      pk: pkOf(id),
      sk: 'AGG',
      gsi1pk: 'example_app_order_v1#order#customer_id#c-2',
      gsi1sk: `example_app_order_v1#order#create_at#${createAt}`,
    });
    const order = parse(Buffer.from(agg.body as string, 'base64'));
    expect([str(order.get(1)?.[0]), num(order.get(2)?.[0]), num(order.get(3)?.[0]), str(order.get(4)?.[0]), num(order.get(6)?.[0])]).toEqual([
      id,
      1n,
      BigInt(State.DRAFT),
      'c-2',
      createAt,
    ]);
    expect(summary).toMatchObject({
      id: 'PROJ#OrderSummary',
      pk: pkOf(id),
      sk: 'PROJ#OrderSummary',
      gsi1pk: 'example_app_order_v1#ordersummary#customer_id#c-2',
      gsi1sk: `example_app_order_v1#ordersummary#create_at#${createAt}`,
      gsi2pk: 'example_app_order_v1#ordersummary#state#STATE_DRAFT',
      gsi2sk: 'example_app_order_v1#ordersummary#placed_at#0',
    });
    expect(summary.version).toBeUndefined();
  });

  it('snapshots at Go positions: after version 50 a Snapshot at 51 (actor snapshot@system, the order at 50 in field 5)', async () => {
    const id = `o-${randomUUID()}`;
    await orders.apply(orderCommands.create({ id, customerId: 'c-3', customerName: 'Cy' } as never, 'alice'));
    let version = 1;
    for (let i = 0; i < 48; i++) version = await orders.apply(orderCommands.addTag({ id, tag: { key: `k${i % 5}`, value: `v${i}` } } as never, 'bob'));
    expect(version).toBe(49);
    // The 50th event brings the snapshot with it: the command answers 51.
    expect(await orders.apply(orderCommands.setShipping({ id, shippingAddress: 'Elm 1' } as never, 'bob'))).toBe(51);
    const docs = await rawEvents(id);
    expect(docs.map((d) => d.v)).toEqual(Array.from({ length: 51 }, (_, i) => i + 1));
    const snap = goDecode(docs[50].d);
    expect(snap.typeUrl).toBe(`type.googleapis.com/${T}.Snapshot`);
    expect([str(snap.fields.get(1)?.[0]), num(snap.fields.get(2)?.[0]), str(snap.fields.get(4)?.[0])]).toEqual([id, 51n, 'snapshot@system']);
    const state = parse(snap.fields.get(5)?.[0] as Uint8Array);
    expect([num(state.get(2)?.[0]), str(state.get(12)?.[0])]).toEqual([50n, 'Elm 1']);
    // Loading reads the last 50 and starts at the snapshot; the view carries the snapshot's version, as Go's.
    const { aggregate, version: loaded } = await orders.load(id);
    expect([loaded, aggregate.version, aggregate.shippingAddress, Object.keys(aggregate.tags).length]).toEqual([51, 51n, 'Elm 1', 5]);
    expect((await orders.get(id)).version).toBe(51n);
    expect(await orders.apply(orderCommands.place({ id, placedAt: 5n } as never, 'bob'))).toBe(52);
  });

  it('compresses an event payload of 300 bytes or more, as Go does', async () => {
    const id = `o-${randomUUID()}`;
    await orders.apply(orderCommands.create({ id, customerId: 'c-4', customerName: 'n'.repeat(400) } as never, 'alice'));
    const [doc] = await rawEvents(id);
    expect(Buffer.from(doc.d as string, 'base64').subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    expect(str(goDecode(doc.d).fields.get(6)?.[0])).toBe('n'.repeat(400));
  });
});

describe('the command pipeline', () => {
  it('refuses with protosource codes: already created, not created, state, validation, empty id', async () => {
    const id = `o-${randomUUID()}`;
    await orders.apply(orderCommands.create({ id, customerId: 'c', customerName: 'n' } as never, 'a'));
    expect((await refusal(orders.apply(orderCommands.create({ id } as never, 'a')))).code).toBe('CMD_ALREADY_CREATED');
    expect((await refusal(orders.apply(orderCommands.place({ id: `missing-${id}` } as never, 'a')))).code).toBe('CMD_NOT_CREATED');
    expect((await refusal(orders.apply(orderCommands.setBilling({ id } as never, 'a')))).code).toBe('CMD_VALIDATION');
    expect((await refusal(orders.apply(orderCommands.create({ id: '' } as never, 'a')))).code).toBe('CMD_EMPTY_ID');
    await orders.apply(orderCommands.place({ id, placedAt: 1n } as never, 'a'));
    const refused = await refusal(orders.apply(orderCommands.addItem({ id, item: { itemId: 'x' } } as never, 'a')));
    expect([refused.code, refused.status, refused.message]).toEqual(['CMD_STATE_VIOLATION', 409, 'command AddItem not allowed in state STATE_PLACED']);
    // Cancel is allowed from PLACED.
    expect(await orders.apply(orderCommands.cancel({ id, reason: 'r' } as never, 'a'))).toBe(3);
  });

  it('removing an absent item is a no-op at the current version (protosource ErrSkip)', async () => {
    const id = `o-${randomUUID()}`;
    await orders.apply(orderCommands.create({ id } as never, 'a'));
    expect(await orders.apply(orderCommands.removeItem({ id, itemId: 'nope' } as never, 'a'))).toBe(1);
    expect((await rawEvents(id)).length).toBe(1);
  });

  it('a Go writer taking the version first makes our command fail with ConcurrencyError, its event kept', async () => {
    const id = `o-${randomUUID()}`;
    await orders.apply(orderCommands.create({ id } as never, 'a'));
    const store = new CosmosEventStore(events);
    // Go's write lands between our load and our save.
    const racing = new ProtosourceRepository(orderDefinition, {
      events: Object.assign(Object.create(store) as CosmosEventStore, {
        save: async (...args: Parameters<CosmosEventStore['save']>) => {
          await goEvent(id, 2, anyOf(`${T}.TagAdded`, message(...eventHead(id, 2, AT, 'go'), [5, message([1, 'go'], [2, 'first'])])));
          return store.save(...args);
        },
      }),
      opaque: new CosmosOpaqueStore(aggregates),
    });
    await expect(racing.apply(orderCommands.addTag({ id, tag: { key: 'ts', value: 'second' } } as never, 'a'))).rejects.toBeInstanceOf(ConcurrencyError);
    const { aggregate } = await orders.load(id);
    expect(Object.keys(aggregate.tags)).toEqual(['go']);
  });

  it('load and get of an unknown order are NotFoundError', async () => {
    await expect(orders.load('nobody')).rejects.toBeInstanceOf(NotFoundError);
    await expect(orders.get('nobody')).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('read-your-writes in protosource mode', () => {
  it('get never answers older than the stream: a view left behind or missing gives way to the events and is repaired', async () => {
    const id = `o-${randomUUID()}`;
    await orders.apply(orderCommands.create({ id, customerId: 'c-ryw', customerName: 'Ann' } as never, 'alice'));
    const [atOne] = await rawViews(id).then((views) => views.filter((v) => v.sk === 'AGG'));
    await orders.apply(orderCommands.place({ id, placedAt: 5n } as never, 'bob'));
    // Its materialization "failed": the AGG document still holds version 1.
    await aggregates.items.upsert(atOne as never);
    expect(await orders.get(id)).toMatchObject({ id, version: 2n, state: State.PLACED });
    const [repaired] = (await rawViews(id)).filter((v) => v.sk === 'AGG');
    expect(repaired.body).not.toEqual(atOne.body);
    // And a view that is missing (its instance died before materializing) is rebuilt too.
    for (const view of (await rawViews(id)).filter((v) => v.sk === 'AGG')) {
      await aggregates.items.batch([{ operationType: 'Delete', id: view.id as string }], pkOf(id));
    }
    expect(await orders.get(id)).toMatchObject({ id, version: 2n });
    await expect(orders.get(`o-${randomUUID()}`)).rejects.toBeInstanceOf(NotFoundError);
  });
});
