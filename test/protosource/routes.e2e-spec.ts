/*
 * The example service's protosource order routes end to end (the real AppModule on its embedded server),
 * as protosource's generated Go handler serves them: protojson or binary bodies by Content-Type/Accept,
 * CommandResponse, apierror.v1 errors. Go documents written straight into the containers are served, and
 * an order created here is stored as Go stores one.
 */
import type { Container } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import request from 'supertest';
import { AGGREGATES_CONTAINER, EVENTS_CONTAINER } from '../../src/index.js';
import { CommandResponseSchema } from '../../src/protosource.js';
import { CapturingLogger, startService, type ServiceUnderTest } from '../support/app.js';
import { AddItemSchema, OrderSchema, State } from '../../example/src/modules/protosource-orders/gen/example-order/order_pb.js';
import { anyOf, eventHead, message, num, parse, str } from './wire.js';

const logger = new CapturingLogger();
let service: ServiceUnderTest;
let http: ServiceUnderTest['http'];
let events: Container;
let aggregates: Container;

beforeAll(async () => {
  service = await startService({ COSMOS_DATABASE: `ps-${randomUUID()}` }, logger);
  http = service.http;
  events = service.app.get(EVENTS_CONTAINER);
  aggregates = service.app.get(AGGREGATES_CONTAINER);
});

afterAll(() => service?.close());

const P = '/example/app/order/v1';
const T = 'example.app.order.v1';
const AT = 1_700_000_000_000_000n;
const JSON_BOTH = { 'Content-Type': 'application/json', Accept: 'application/json' };
const uid = (p: string) => `${p}-${randomUUID()}`;

/** A protojson command, protojson answer. */
function post(command: string, body: Record<string, unknown>, actor = 'alice') {
  return request(http).post(`${P}/${command}`).set(JSON_BOTH).set('x-actor', actor).send(body);
}

function getJson(path: string) {
  return request(http).get(path).set('Accept', 'application/json');
}

describe('commands and reads in protojson', () => {
  it('runs the order lifecycle: create, items, tags, shipping, billing, place, cancel', async () => {
    const id = uid('o');
    expect((await post('create', { id, customerId: 'c-1', customerName: 'Ann', actor: 'mallory' })).body).toEqual({ id, version: '1' });
    await post('additem', { id, item: { itemId: 'sku-1', description: 'Book', priceCents: '1250', quantity: 2 } }).expect(200);
    await post('additem', { id, item: { itemId: 'sku-2', description: 'Pen', priceCents: '100', quantity: 1 } }).expect(200);
    await post('removeitem', { id, itemId: 'sku-2' }).expect(200);
    await post('addtag', { id, tag: { key: 'prio', value: 'rush' } }).expect(200);
    await post('addtag', { id, tag: { key: 'src', value: 'web' } }).expect(200);
    await post('removetag', { id, key: 'src' }).expect(200);
    await post('setshipping', { id, shippingAddress: '1 Main St' }).expect(200);
    await post('setbilling', { id, billing: { method: 'card', reference: 'r-1' } }).expect(200);
    await post('clearbilling', { id }).expect(200);
    expect((await post('place', { id, placedAt: '42' }, 'bob')).body).toEqual({ id, version: '11' });

    const got = await getJson(`${P}/${id}`).expect(200).expect('Content-Type', /application\/json/);
    expect(got.body).toMatchObject({
      id,
      version: '11',
      state: 'STATE_PLACED',
      customerId: 'c-1',
      createBy: 'alice', // the header's actor, never the body's
      modifyBy: 'bob',
      totalCents: '2500',
      itemCount: 1,
      shippingAddress: '1 Main St',
      placedAt: '42',
      items: { 'sku-1': { itemId: 'sku-1', description: 'Book', priceCents: '1250', quantity: 2 } },
      tags: { prio: { key: 'prio', value: 'rush' } },
    });
    expect(got.body.billing).toBeUndefined();
    expect((await getJson(`${P}/load/${id}`).expect(200)).body).toEqual(got.body);

    const history = await getJson(`${P}/${id}/history`).expect(200);
    expect(history.body.records.map((r: { version: string }) => r.version)).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11']);

    expect((await post('cancel', { id, reason: 'changed mind' })).body).toEqual({ id, version: '12' });
    expect((await getJson(`${P}/${id}`)).body.state).toBe('STATE_CANCELLED');
  });

  it('refuses in protosource’s error shape: allowed states, lifecycle, validation, unknown order, bad bodies', async () => {
    const id = uid('o');
    await post('create', { id, customerId: 'c' }).expect(200);
    const again = await post('create', { id }).expect(409);
    expect(again.body).toEqual({ code: 'CMD_ALREADY_CREATED', message: 'aggregate already exists' });
    expect((await post('place', { id: uid('none') }).expect(404)).body).toEqual({ code: 'CMD_NOT_CREATED', message: 'aggregate not found' });
    expect((await post('setbilling', { id }).expect(400)).body.code).toBe('CMD_VALIDATION');
    expect((await post('create', {}).expect(400)).body).toEqual({ code: 'CMD_EMPTY_ID', message: 'aggregate id is required' });
    const bad = await post('create', { id, nope: 1 }).expect(400);
    expect(bad.body).toMatchObject({ code: 'CMD_UNMARSHAL', message: 'invalid request body' });
    expect(bad.body.detail).toEqual(expect.any(String));
    await post('place', { id }).expect(200);
    expect((await post('addtag', { id, tag: { key: 'k' } }).expect(409)).body).toEqual({
      code: 'CMD_STATE_VIOLATION',
      message: 'command not allowed in current aggregate state',
    });
    expect((await getJson(`${P}/${uid('none')}`).expect(404)).body).toEqual({ code: 'GET_NOT_FOUND', message: 'aggregate not found' });
    expect((await getJson(`${P}/load/${uid('none')}`).expect(404)).body).toEqual({ code: 'LOAD_NOT_FOUND', message: 'aggregate not found' });
    // Go answers an unknown aggregate's history with an empty History, which no client can tell from one with no event: 404 here.
    expect((await getJson(`${P}/${uid('none')}/history`).expect(404)).body).toEqual({ code: 'HIST_NOT_FOUND', message: 'aggregate not found' });
  });

  it('queries by customer, ascending by create_at, with sk_op on create_at', async () => {
    const customer = uid('c');
    const ids = [uid('o'), uid('o'), uid('o')];
    for (const id of ids) await post('create', { id, customerId: customer }).expect(200);
    const all = await getJson(`${P}/query/by-customer-id?customer_id=${customer}`).expect(200);
    expect(all.body.items.map((o: { id: string }) => o.id)).toEqual(ids);
    const firstAt = all.body.items[0].createAt as string;
    const after = await getJson(`${P}/query/by-customer-id?customer_id=${customer}&sk_op=gt&create_at=${firstAt}`).expect(200);
    expect(after.body.items.map((o: { id: string }) => o.id)).toEqual(ids.slice(1));
    const upTo = all.body.items[1].createAt as string;
    const between = await getJson(`${P}/query/by-customer-id?customer_id=${customer}&sk_op=between&create_at=${firstAt}&create_at2=${upTo}`);
    expect(between.body.items.map((o: { id: string }) => o.id)).toEqual(ids.slice(0, 2));
    expect((await getJson(`${P}/query/by-customer-id`).expect(400)).body.code).toBe('QUERY_MISSING_PK');
    expect((await getJson(`${P}/query/by-customer-id?customer_id=x&sk_op=near`).expect(400)).body.code).toBe('QUERY_BAD_OP');
    expect((await getJson(`${P}/query/by-customer-id?customer_id=x&sk_op=gt`).expect(400)).body.code).toBe('QUERY_MISSING_SK');
    expect((await getJson(`${P}/query/by-customer-id?customer_id=x&sk_op=gt&create_at=soon`).expect(400)).body.code).toBe('QUERY_BAD_PARAM');
    expect((await getJson(`${P}/query/by-customer-id?customer_id=x&sk_op=between&create_at=1`).expect(400)).body.code).toBe('QUERY_MISSING_SK');
  });

  it('writes a snapshot after the 50th event, at 51, as Go does; reads stay right past it', async () => {
    const id = uid('o');
    await post('create', { id, customerId: 'c-s' }).expect(200);
    for (let i = 2; i < 50; i++) await post('addtag', { id, tag: { key: `k${i % 3}`, value: `v${i}` } }).expect(200);
    expect((await post('setshipping', { id, shippingAddress: 'Elm 1' })).body).toEqual({ id, version: '51' });
    const { records } = (await getJson(`${P}/${id}/history`).expect(200)).body as { records: Array<{ version: string; data: string }> };
    expect(records.length).toBe(51);
    const last = parse(Buffer.from(records[50].data, 'base64'));
    expect(str(last.get(1)?.[0])).toBe(`type.googleapis.com/${T}.Snapshot`);
    expect(str(parse(last.get(2)?.[0] as Uint8Array).get(4)?.[0])).toBe('snapshot@system');
    expect((await post('place', { id })).body).toEqual({ id, version: '52' });
    const loaded = (await getJson(`${P}/load/${id}`).expect(200)).body;
    expect(loaded).toMatchObject({ version: '52', state: 'STATE_PLACED', shippingAddress: 'Elm 1' });
    expect(Object.keys(loaded.tags).sort()).toEqual(['k0', 'k1', 'k2']);
    expect((await getJson(`${P}/${id}`)).body).toEqual(loaded);
  });

  it("answers 405 for a known path's other method and 404 off the routes, as protosource's router", async () => {
    expect((await request(http).get(`${P}/create/x/y`)).status).toBe(404);
    expect((await request(http).put(`${P}/o-1`)).status).toBe(405);
    const refused = await request(http).delete(`${P}/o-1/history`).set('Accept', 'application/json').expect(405);
    expect(refused.headers.allow).toBe('GET, HEAD');
    expect(refused.body).toEqual({ code: 'METHOD_NOT_ALLOWED', message: 'DELETE is not allowed here; use GET, HEAD' });
    const missing = await request(http).get(`${P}/create/x/y`).set('Accept', 'application/json').expect(404);
    expect(missing.body).toEqual({ code: 'NOT_FOUND', message: `no route GET ${P}/create/x/y` });
  });
});

describe('binary protobuf, protosource’s default', () => {
  it('takes a binary command and answers binary when nothing says JSON', async () => {
    const id = uid('o');
    await post('create', { id, customerId: 'c-b' }).expect(200);
    const body = toBinary(AddItemSchema, create(AddItemSchema, { id, item: { itemId: 'i', priceCents: 5n, quantity: 3 } }));
    const res = await request(http)
      .post(`${P}/additem`)
      .set('Content-Type', 'application/protobuf')
      .send(Buffer.from(body))
      .buffer(true)
      .parse((r, done) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => done(null, Buffer.concat(chunks)));
      })
      .expect(200)
      .expect('Content-Type', 'application/protobuf');
    const answer = fromBinary(CommandResponseSchema, res.body as Buffer);
    expect([answer.id, answer.version]).toEqual([id, 2n]);
    const got = await request(http)
      .get(`${P}/${id}`)
      .set('Accept', 'application/protobuf')
      .buffer(true)
      .parse((r, done) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => done(null, Buffer.concat(chunks)));
      })
      .expect(200);
    expect(fromBinary(OrderSchema, got.body as Buffer)).toMatchObject({ id, totalCents: 15n, itemCount: 1 });
  });
});

describe('sharing the containers with Go', () => {
  it('serves, changes and queries an order written as Go documents', async () => {
    const id = uid('o');
    const customer = uid('c');
    const stream = `example_app_order_v1#${id}`;
    const created = anyOf(`${T}.Created`, message(...eventHead(id, 1, AT, 'go-user'), [5, customer], [6, 'Gopher']));
    await events.items.create({ id: '1', a: stream, v: 1, d: Buffer.from(created).toString('base64') });
    const body = message([1, id], [2, 1], [3, State.DRAFT], [4, customer], [5, 'Gopher'], [6, AT], [7, 'go-user'], [8, AT], [9, 'go-user']);
    await aggregates.items.create({
      id: 'AGG',
      pk: `example_app_order_v1#order#id#${id}`,
      sk: 'AGG',
      body: Buffer.from(body).toString('base64'),
      gsi1pk: `example_app_order_v1#order#customer_id#${customer}`,
      gsi1sk: `example_app_order_v1#order#create_at#${AT}`,
    });
    await aggregates.items.batch(
      [{ operationType: 'Upsert', resourceBody: { id: 'PROJ#OrderSummary', pk: `example_app_order_v1#order#id#${id}`, sk: 'PROJ#OrderSummary', body: Buffer.from(message([1, id], [2, State.DRAFT])).toString('base64') } }],
      `example_app_order_v1#order#id#${id}`,
    );

    expect((await getJson(`${P}/${id}`).expect(200)).body).toMatchObject({ id, customerName: 'Gopher', state: 'STATE_DRAFT' });
    expect((await getJson(`${P}/query/by-customer-id?customer_id=${customer}`)).body.items.map((o: { id: string }) => o.id)).toEqual([id]);
    expect((await post('place', { id, placedAt: '9' })).body).toEqual({ id, version: '2' });
    const after = await getJson(`${P}/${id}`).expect(200);
    expect(after.body).toMatchObject({ version: '2', state: 'STATE_PLACED', createBy: 'go-user', modifyBy: 'alice' });
    // Still one document per (pk, sk): the materialized order and Go's projection were updated in place.
    const { resources } = await aggregates.items
      .query<{ id: string }>({ query: 'SELECT c.id FROM c WHERE c.pk = @pk', parameters: [{ name: '@pk', value: `example_app_order_v1#order#id#${id}` }] })
      .fetchAll();
    expect(resources.map((r) => r.id).sort()).toEqual(['AGG', 'PROJ#OrderSummary']);
  });

  it('stores an order created through the routes document for document as Go would', async () => {
    const id = uid('o');
    await post('create', { id, customerId: 'c-go', customerName: 'Ann' }).expect(200);
    const stream = `example_app_order_v1#${id}`;
    const { resources: docs } = await events.items
      .query<Record<string, unknown>>({ query: 'SELECT * FROM c WHERE c.a = @a', parameters: [{ name: '@a', value: stream }] }, { partitionKey: stream })
      .fetchAll();
    // Go's fields, and `m` (the event's ids), which Go ignores.
    expect(docs.map((d) => Object.keys(d).filter((k) => !k.startsWith('_')).sort())).toEqual([['a', 'd', 'id', 'm', 'v']]);
    const any = parse(Buffer.from(docs[0].d as string, 'base64'));
    expect(str(any.get(1)?.[0])).toBe(`type.googleapis.com/${T}.Created`);
    const event = parse(any.get(2)?.[0] as Uint8Array);
    const at = num(event.get(3)?.[0]);
    // The fields Go's reader sees, in order: id, version, at, actor, customer_id, customer_name.
    expect(Buffer.from(any.get(2)?.[0] as Uint8Array)).toEqual(Buffer.from(message(...eventHead(id, 1, at, 'alice'), [5, 'c-go'], [6, 'Ann'])));

    const pk = `example_app_order_v1#order#id#${id}`;
    const { resources: views } = await aggregates.items
      .query<Record<string, unknown>>({ query: 'SELECT * FROM c WHERE c.pk = @pk', parameters: [{ name: '@pk', value: pk }] }, { partitionKey: pk })
      .fetchAll();
    const byId = Object.fromEntries(views.map((v) => [v.id, Object.fromEntries(Object.entries(v).filter(([k]) => !k.startsWith('_')))]));
    const order = message([1, id], [2, 1], [3, State.DRAFT], [4, 'c-go'], [5, 'Ann'], [6, at], [7, 'alice'], [8, at], [9, 'alice']);
    expect(byId.AGG).toEqual({
      id: 'AGG',
      pk,
      sk: 'AGG',
      body: Buffer.from(order).toString('base64'),
      gsi1pk: 'example_app_order_v1#order#customer_id#c-go',
      gsi1sk: `example_app_order_v1#order#create_at#${at}`,
    });
    expect(byId['PROJ#OrderSummary']).toEqual({
      id: 'PROJ#OrderSummary',
      pk,
      sk: 'PROJ#OrderSummary',
      body: Buffer.from(message([1, id], [2, State.DRAFT], [3, 'c-go'], [4, 'Ann'], [8, at])).toString('base64'),
      gsi1pk: 'example_app_order_v1#ordersummary#customer_id#c-go',
      gsi1sk: `example_app_order_v1#ordersummary#create_at#${at}`,
      gsi2pk: 'example_app_order_v1#ordersummary#state#STATE_DRAFT',
      gsi2sk: 'example_app_order_v1#ordersummary#placed_at#0',
    });
  });
});

describe('client mistakes are 4xx, not Go\'s 500', () => {
  it('an item already present is 409 CMD_REJECTED, an item without id and an over-long id 400 CMD_VALIDATION', async () => {
    const id = uid('p-dup');
    await post('create', { id, customerId: 'c' }).expect(200);
    const item = { itemId: 'i1', description: 'Tea', priceCents: '300', quantity: 1 };
    await post('additem', { id, item }).expect(200);
    expect((await post('additem', { id, item }).expect(409)).body).toMatchObject({ code: 'CMD_REJECTED' });
    expect((await post('additem', { id }).expect(400)).body).toMatchObject({ code: 'CMD_VALIDATION' });
    expect((await post('create', { id: 'x'.repeat(3000), customerId: 'c' }).expect(400)).body).toMatchObject({ code: 'CMD_VALIDATION' });
  });

  it('refuses an item whose total overflows int64 with 400 naming the field, stores nothing, and the order stays usable (issue 20)', async () => {
    const id = uid('px');
    await post('create', { id, customerId: 'pc' }).expect(200);
    const refused = await post('additem', { id, item: { itemId: 'i', priceCents: '5000000000000000000', quantity: 2 } }).expect(400);
    expect(refused.body).toMatchObject({ code: 'CMD_VALIDATION' });
    expect(refused.body.message).toContain('total_cents');
    // Nothing was stored: the order reads, loads and takes commands at version 1.
    expect((await getJson(`${P}/${id}`).expect(200)).body).toMatchObject({ id, version: '1' });
    expect((await getJson(`${P}/load/${id}`).expect(200)).body).toMatchObject({ id, version: '1' });
    expect((await getJson(`${P}/${id}/history`).expect(200)).body.records).toHaveLength(1);
    expect((await post('additem', { id, item: { itemId: 'i', priceCents: '5', quantity: 2 } }).expect(200)).body).toEqual({ id, version: '2' });
    expect((await post('cancel', { id }).expect(200)).body).toEqual({ id, version: '3' });
  });
});
