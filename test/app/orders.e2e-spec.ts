/*
 * The orders service end to end: the real AppModule on the embedded Cosmos server it starts itself (no
 * COSMOS_ENDPOINT), driven over HTTP with supertest — the contract of issue 3, error codes included.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { isConflict, SNAPSHOT_TAIL_STORE, type SnapshotTailStore, type TipStore } from '../../src/index.js';
import { CapturingLogger, startService, type ServiceUnderTest } from '../support/app.js';

interface Line {
  sku: string;
  quantity: number;
  unitPrice: number;
}
interface OrderBody {
  id: string;
  customerId: string;
  status: string;
  lines: Line[];
  total: string;
  version: number;
  createdAt: string;
  updatedAt: string;
}
interface PageBody {
  items: OrderBody[];
  continuationToken?: string;
}
interface HistoryBody {
  events: Array<{ type: string; version: number; at: string; actor: string } & Record<string, unknown>>;
}

const logger = new CapturingLogger();
let service: ServiceUnderTest;
let http: ServiceUnderTest['http'];

beforeAll(async () => {
  service = await startService({ COSMOS_DATABASE: `orders-${randomUUID()}` }, logger);
  http = service.http;
});

afterAll(() => service?.close());

const uniqueId = (prefix: string) => `${prefix}-${randomUUID()}`;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const path = (id: string, rest = '') => `/orders/${encodeURIComponent(id)}${rest}`;

/** Places an order for the customer (a fresh one by default) and adds the lines; answers its id. */
async function newOrder(customerId = uniqueId('cust'), lines: Line[] = []): Promise<string> {
  const { body } = await request(http).post('/orders').send({ customerId }).expect(201);
  for (const line of lines) await request(http).post(path(body.id, '/lines')).send(line).expect(200);
  return body.id as string;
}

async function getOrder(id: string): Promise<OrderBody> {
  return (await request(http).get(path(id)).expect(200)).body as OrderBody;
}

/** Every page of a list, following continuation tokens; checks each page's size and that no id repeats. */
async function allPages(url: string, limit: number): Promise<{ items: OrderBody[]; pages: number }> {
  const items: OrderBody[] = [];
  let token: string | undefined;
  let pages = 0;
  do {
    const res = await request(http)
      .get(url)
      .query({ limit, ...(token ? { continuationToken: token } : {}) })
      .expect(200);
    const page = res.body as PageBody;
    pages++;
    expect(page.items.length).toBeLessThanOrEqual(limit);
    if (page.continuationToken !== undefined) expect(page.items.length).toBeGreaterThan(0);
    items.push(...page.items);
    token = page.continuationToken;
    if (pages > 500) throw new Error(`${url} does not end`);
  } while (token);
  const ids = items.map((o) => o.id);
  expect(new Set(ids).size).toBe(ids.length);
  return { items, pages };
}

const statusIds = async (status: string) => (await allPages(`/orders?status=${status}`, 25)).items.map((o) => o.id);

/** The JSON error body the service answers refusals with. */
function expectErrorBody(res: request.Response, statusCode: number): void {
  expect(res.headers['content-type']).toMatch(/json/);
  expect(res.body).toMatchObject({ statusCode, message: expect.any(String) });
}

describe('POST /orders', () => {
  it('answers 201 { id, version: 1 } with a generated id when no orderId is given', async () => {
    const res = await request(http).post('/orders').send({ customerId: 'c-gen' }).expect(201).expect('content-type', /json/);
    expect(res.body).toEqual({ id: expect.stringMatching(UUID), version: 1 });
    expect(await getOrder(res.body.id)).toMatchObject({ id: res.body.id, customerId: 'c-gen', status: 'open', version: 1 });
    // Two orders get two ids.
    const second = await request(http).post('/orders').send({ customerId: 'c-gen' }).expect(201);
    expect(second.body.id).not.toBe(res.body.id);
  });

  it('answers 201 { id: orderId, version: 1 } with the orderId given', async () => {
    const orderId = uniqueId('ord');
    const res = await request(http).post('/orders').send({ customerId: 'c-1', orderId }).expect(201);
    expect(res.body).toEqual({ id: orderId, version: 1 });
    expect((await getOrder(orderId)).customerId).toBe('c-1');
  });

  it('answers 409 with a JSON error for an orderId that exists, and keeps the order as it was', async () => {
    const orderId = uniqueId('ord');
    await request(http).post('/orders').send({ customerId: 'first', orderId }).expect(201);
    const res = await request(http).post('/orders').send({ customerId: 'second', orderId }).expect(409);
    expectErrorBody(res, 409);
    expect(await getOrder(orderId)).toMatchObject({ customerId: 'first', version: 1 });
  });

  it('keeps an orderId with URL-special characters readable through its encoded path', async () => {
    const orderId = `ord ${randomUUID()}/x?y#z`;
    await request(http).post('/orders').send({ customerId: 'c-1', orderId }).expect(201);
    await request(http).post(path(orderId, '/lines')).send({ sku: 'a', quantity: 1, unitPrice: 1 }).expect(200);
    expect(await getOrder(orderId)).toMatchObject({ id: orderId, version: 2 });
  });

  it.each([
    ['a missing customerId', {}],
    ['an empty customerId', { customerId: '' }],
    ['a customerId that is not a string', { customerId: 42 }],
    ['an orderId that is not a string', { customerId: 'c-1', orderId: 42 }],
    ['an empty orderId', { customerId: 'c-1', orderId: '' }],
  ])('answers 400 or 422 with a JSON error for %s', async (_what, body) => {
    const res = await request(http).post('/orders').send(body);
    expect([400, 422]).toContain(res.status);
    expectErrorBody(res, res.status);
  });

  it('creates nothing for a refused body', async () => {
    const orderId = uniqueId('ord');
    await request(http).post('/orders').send({ orderId });
    await request(http).get(path(orderId)).expect(404);
  });

  it.each([
    ['a JSON array', (r: request.Test) => r.send([{ customerId: 'c-1' }])],
    ['a JSON string', (r: request.Test) => r.set('content-type', 'application/json').send('"c-1"')],
    ['malformed JSON', (r: request.Test) => r.set('content-type', 'application/json').send('{"customerId":')],
    ['no body', (r: request.Test) => r],
  ])('answers 400 with a JSON error for %s', async (_what, send) => {
    const res = await send(request(http).post('/orders')).expect(400);
    expectErrorBody(res, 400);
  });

  it.each([
    ['a text body', (r: request.Test) => r.set('content-type', 'text/plain').send('customerId=c-1')],
    // What an HTML form on any web site can make a browser post here, without a CORS preflight.
    ['a form body', (r: request.Test) => r.type('form').send({ customerId: 'c-1', orderId: 'from-a-form' })],
    ['a JSON body under another media type', (r: request.Test) => r.set('content-type', 'application/vnd.api+json').send('{"customerId":"c-1"}')],
  ])('answers 415 with a JSON error for %s, and places nothing', async (_what, send) => {
    const res = await send(request(http).post('/orders')).expect(415);
    expectErrorBody(res, 415);
    await request(http).get('/orders/from-a-form').expect(404);
  });
});

describe('POST /orders/:id/lines and DELETE /orders/:id/lines/:sku', () => {
  it('answers 200 { version } with each new version, and the order shows the lines', async () => {
    const id = await newOrder();
    const first = await request(http).post(path(id, '/lines')).send({ sku: 'widget', quantity: 2, unitPrice: 5 }).expect(200);
    expect(first.body).toEqual({ version: 2 });
    const second = await request(http).post(path(id, '/lines')).send({ sku: 'gadget', quantity: 1, unitPrice: 2.5 }).expect(200);
    expect(second.body).toEqual({ version: 3 });
    const order = await getOrder(id);
    expect(order.lines).toEqual([
      { sku: 'widget', quantity: 2, unitPrice: 5 },
      { sku: 'gadget', quantity: 1, unitPrice: 2.5 },
    ]);
    expect(order.total).toBe('12.50');
    expect(order.version).toBe(3);
  });

  it('adds to the quantity of a sku already on the order (one line)', async () => {
    const id = await newOrder(undefined, [{ sku: 'widget', quantity: 2, unitPrice: 5 }]);
    await request(http).post(path(id, '/lines')).send({ sku: 'widget', quantity: 3, unitPrice: 5 }).expect(200);
    expect((await getOrder(id)).lines).toEqual([{ sku: 'widget', quantity: 5, unitPrice: 5 }]);
  });

  it('DELETE removes the line (200 { version }); again, it answers 200 with the version unchanged', async () => {
    const id = await newOrder(undefined, [
      { sku: 'widget', quantity: 2, unitPrice: 5 },
      { sku: 'gadget', quantity: 1, unitPrice: 1 },
    ]);
    expect((await request(http).delete(path(id, '/lines/widget')).expect(200)).body).toEqual({ version: 4 });
    expect((await request(http).delete(path(id, '/lines/widget')).expect(200)).body).toEqual({ version: 4 });
    expect((await request(http).delete(path(id, '/lines/never-added')).expect(200)).body).toEqual({ version: 4 });
    const order = await getOrder(id);
    expect(order).toMatchObject({ version: 4, total: '1.00', lines: [{ sku: 'gadget', quantity: 1, unitPrice: 1 }] });
    // The skipped removals stored nothing.
    const history = (await request(http).get(path(id, '/history')).expect(200)).body as HistoryBody;
    expect(history.events.map((e) => e.type)).toEqual(['OrderPlaced', 'LineAdded', 'LineAdded', 'LineRemoved']);
  });

  it('DELETE finds a sku with URL-special characters', async () => {
    const sku = 'box/10 #3?';
    const id = await newOrder(undefined, [{ sku, quantity: 1, unitPrice: 1 }]);
    expect((await request(http).delete(path(id, `/lines/${encodeURIComponent(sku)}`)).expect(200)).body).toEqual({ version: 3 });
    expect((await getOrder(id)).lines).toEqual([]);
  });

  it.each([
    ['quantity 0', { sku: 'a', quantity: 0, unitPrice: 1 }],
    ['a negative quantity', { sku: 'a', quantity: -2, unitPrice: 1 }],
    ['a fractional quantity', { sku: 'a', quantity: 1.5, unitPrice: 1 }],
    ['a quantity that is a string', { sku: 'a', quantity: '2', unitPrice: 1 }],
    ['a missing quantity', { sku: 'a', unitPrice: 1 }],
    ['a negative unit price', { sku: 'a', quantity: 1, unitPrice: -1 }],
    ['a missing unit price', { sku: 'a', quantity: 1 }],
    ['a missing sku', { quantity: 1, unitPrice: 1 }],
    ['an empty sku', { sku: '', quantity: 1, unitPrice: 1 }],
  ])('answers 400 or 422 with a JSON error for %s, and adds nothing', async (_what, body) => {
    const id = await newOrder();
    const res = await request(http).post(path(id, '/lines')).send(body);
    expect([400, 422]).toContain(res.status);
    expectErrorBody(res, res.status);
    expect(await getOrder(id)).toMatchObject({ version: 1, lines: [] });
  });

  it('answers 400 with a JSON error for a body that is not an object, 415 for one that is not JSON', async () => {
    const id = await newOrder();
    expectErrorBody(await request(http).post(path(id, '/lines')).send([{ sku: 'a', quantity: 1, unitPrice: 1 }]).expect(400), 400);
    expectErrorBody(await request(http).post(path(id, '/lines')).set('content-type', 'text/plain').send('a').expect(415), 415);
  });
});

describe('POST /orders/:id/submit|ship|cancel', () => {
  it('takes an order open → submitted → shipped, answering 200 { version } each time', async () => {
    const id = await newOrder(undefined, [{ sku: 'widget', quantity: 1, unitPrice: 3 }]);
    expect((await request(http).post(path(id, '/submit')).expect(200)).body).toEqual({ version: 3 });
    expect((await getOrder(id)).status).toBe('submitted');
    expect((await request(http).post(path(id, '/ship')).expect(200)).body).toEqual({ version: 4 });
    expect(await getOrder(id)).toMatchObject({ status: 'shipped', version: 4 });
  });

  it('cancels an open order and a submitted one', async () => {
    const open = await newOrder();
    expect((await request(http).post(path(open, '/cancel')).expect(200)).body).toEqual({ version: 2 });
    expect((await getOrder(open)).status).toBe('cancelled');
    const submitted = await newOrder(undefined, [{ sku: 'a', quantity: 1, unitPrice: 1 }]);
    await request(http).post(path(submitted, '/submit')).expect(200);
    expect((await request(http).post(path(submitted, '/cancel')).expect(200)).body).toEqual({ version: 4 });
    expect((await getOrder(submitted)).status).toBe('cancelled');
  });

  it('answers 422 with a JSON error for submitting an order without lines', async () => {
    const id = await newOrder();
    expectErrorBody(await request(http).post(path(id, '/submit')).expect(422), 422);
    expect(await getOrder(id)).toMatchObject({ status: 'open', version: 1 });
  });

  it('answers 409 for shipping an open order', async () => {
    const id = await newOrder(undefined, [{ sku: 'a', quantity: 1, unitPrice: 1 }]);
    expectErrorBody(await request(http).post(path(id, '/ship')).expect(409), 409);
    expect(await getOrder(id)).toMatchObject({ status: 'open', version: 2 });
  });

  it('answers 409 for changing lines or submitting again after submit', async () => {
    const id = await newOrder(undefined, [{ sku: 'a', quantity: 1, unitPrice: 1 }]);
    await request(http).post(path(id, '/submit')).expect(200);
    expectErrorBody(await request(http).post(path(id, '/lines')).send({ sku: 'b', quantity: 1, unitPrice: 1 }).expect(409), 409);
    expectErrorBody(await request(http).delete(path(id, '/lines/a')).expect(409), 409);
    expectErrorBody(await request(http).post(path(id, '/submit')).expect(409), 409);
    expect(await getOrder(id)).toMatchObject({ status: 'submitted', version: 3, lines: [{ sku: 'a', quantity: 1, unitPrice: 1 }] });
  });

  it('answers 409 for anything after cancel', async () => {
    const id = await newOrder(undefined, [{ sku: 'a', quantity: 1, unitPrice: 1 }]);
    await request(http).post(path(id, '/cancel')).expect(200);
    await request(http).post(path(id, '/lines')).send({ sku: 'b', quantity: 1, unitPrice: 1 }).expect(409);
    await request(http).delete(path(id, '/lines/a')).expect(409);
    await request(http).post(path(id, '/submit')).expect(409);
    await request(http).post(path(id, '/ship')).expect(409);
    expectErrorBody(await request(http).post(path(id, '/cancel')).expect(409), 409);
    expect(await getOrder(id)).toMatchObject({ status: 'cancelled', version: 3 });
  });

  it('answers 409 for cancelling or shipping a shipped order', async () => {
    const id = await newOrder(undefined, [{ sku: 'a', quantity: 1, unitPrice: 1 }]);
    await request(http).post(path(id, '/submit')).expect(200);
    await request(http).post(path(id, '/ship')).expect(200);
    expectErrorBody(await request(http).post(path(id, '/cancel')).expect(409), 409);
    await request(http).post(path(id, '/ship')).expect(409);
    expect(await getOrder(id)).toMatchObject({ status: 'shipped', version: 4 });
  });
});

describe('GET /orders/:id', () => {
  it('answers exactly { id, customerId, status, lines, total, version, createdAt, updatedAt }', async () => {
    const before = Date.now();
    const customerId = uniqueId('cust');
    const id = await newOrder(customerId, [
      { sku: 'a', quantity: 3, unitPrice: 0.1 },
      { sku: 'b', quantity: 1, unitPrice: 0.2 },
    ]);
    const res = await request(http).get(path(id)).expect(200).expect('content-type', /json/);
    expect(res.body).toEqual({
      id,
      customerId,
      status: 'open',
      lines: [
        { sku: 'a', quantity: 3, unitPrice: 0.1 },
        { sku: 'b', quantity: 1, unitPrice: 0.2 },
      ],
      total: '0.50',
      version: 3,
      createdAt: expect.stringMatching(ISO),
      updatedAt: expect.stringMatching(ISO),
    });
    const { createdAt, updatedAt } = res.body as OrderBody;
    expect(Date.parse(createdAt)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(updatedAt)).toBeGreaterThanOrEqual(Date.parse(createdAt));
    expect(Date.parse(updatedAt)).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it('answers the total exactly at the limits of a line, beside a single cent', async () => {
    // A line of 10^6 at 999,999,999.99 is 99,999,999,999,000,000 cents, past 2^53: as a number, the cent beside it was lost.
    const id = await newOrder(uniqueId('cust'), [
      { sku: 'gold', quantity: 1_000_000, unitPrice: 999_999_999.99 },
      { sku: 'tea', quantity: 1, unitPrice: 0.01 },
    ]);
    const order = await getOrder(id);
    expect(order.total).toBe('999999999990000.01');
    expect(order.lines).toEqual([
      { sku: 'gold', quantity: 1_000_000, unitPrice: 999_999_999.99 },
      { sku: 'tea', quantity: 1, unitPrice: 0.01 },
    ]);
  });
});

describe('GET /orders/:id/history', () => {
  it('answers the events oldest first: type, version, at (ISO), actor from x-actor, and the event fields', async () => {
    const before = Date.now();
    const { body } = await request(http).post('/orders').set('x-actor', 'alice').send({ customerId: 'c-h' }).expect(201);
    const id = body.id as string;
    await request(http).post(path(id, '/lines')).set('x-actor', 'bob').send({ sku: 'widget', quantity: 2, unitPrice: 5 }).expect(200);
    await request(http).delete(path(id, '/lines/widget')).expect(200);
    await request(http).post(path(id, '/lines')).set('x-actor', '   ').send({ sku: 'gadget', quantity: 1, unitPrice: 1 }).expect(200);
    await request(http).post(path(id, '/submit')).set('x-actor', 'carol').expect(200);
    await request(http).post(path(id, '/cancel')).set('x-actor', 'dave').expect(200);

    const history = (await request(http).get(path(id, '/history')).expect(200)).body as HistoryBody;
    expect(history.events.map(({ type, version, actor }) => ({ type, version, actor }))).toEqual([
      { type: 'OrderPlaced', version: 1, actor: 'alice' },
      { type: 'LineAdded', version: 2, actor: 'bob' },
      { type: 'LineRemoved', version: 3, actor: 'anonymous' },
      { type: 'LineAdded', version: 4, actor: 'anonymous' },
      { type: 'OrderSubmitted', version: 5, actor: 'carol' },
      { type: 'OrderCancelled', version: 6, actor: 'dave' },
    ]);
    expect(history.events[0]).toMatchObject({ customerId: 'c-h' });
    expect(history.events[1]).toMatchObject({ sku: 'widget', quantity: 2, unitPrice: 5 });
    expect(history.events[2]).toMatchObject({ sku: 'widget' });
    const times = history.events.map((e) => e.at);
    for (const at of times) {
      expect(at).toMatch(ISO);
      expect(Date.parse(at)).toBeGreaterThanOrEqual(before - 1000);
      expect(Date.parse(at)).toBeLessThanOrEqual(Date.now() + 1000);
    }
    expect([...times].sort()).toEqual(times);
  });
});

describe('an unknown order', () => {
  const unknown = uniqueId('missing');
  it.each([
    ['GET /orders/:id', () => request(http).get(path(unknown))],
    ['GET /orders/:id/history', () => request(http).get(path(unknown, '/history'))],
    ['POST /orders/:id/lines', () => request(http).post(path(unknown, '/lines')).send({ sku: 'a', quantity: 1, unitPrice: 1 })],
    ['DELETE /orders/:id/lines/:sku', () => request(http).delete(path(unknown, '/lines/a'))],
    ['POST /orders/:id/submit', () => request(http).post(path(unknown, '/submit'))],
    ['POST /orders/:id/ship', () => request(http).post(path(unknown, '/ship'))],
    ['POST /orders/:id/cancel', () => request(http).post(path(unknown, '/cancel'))],
  ])('answers 404 with a JSON error on %s', async (_route, send) => {
    expectErrorBody(await send().expect(404), 404);
  });

  it('is not created by the commands refused with 404', async () => {
    await request(http).post(path(unknown, '/lines')).send({ sku: 'a', quantity: 1, unitPrice: 1 });
    await request(http).get(path(unknown, '/history')).expect(404);
  });
});

describe('GET /customers/:id/orders', () => {
  it("answers the customer's orders only, oldest first, in the order shape", async () => {
    const customerId = uniqueId('acme/eu #1?');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(await newOrder(customerId, [{ sku: `s${i}`, quantity: 1, unitPrice: i }]));
      await new Promise((resolve) => setTimeout(resolve, 2)); // a createdAt of its own (millisecond resolution)
    }
    await newOrder(uniqueId('other'));
    const res = await request(http).get(`/customers/${encodeURIComponent(customerId)}/orders`).expect(200);
    const page = res.body as PageBody;
    expect(page.items.map((o) => o.id)).toEqual(ids);
    expect(page).not.toHaveProperty('continuationToken');
    expect(page.items[1]).toEqual(await getOrder(ids[1]));
    expect(page.items.every((o) => o.customerId === customerId)).toBe(true);
  });

  it('answers { items: [] } for a customer without orders', async () => {
    expect((await request(http).get(`/customers/${uniqueId('nobody')}/orders`).expect(200)).body).toEqual({ items: [] });
  });

  it('pages with limit and continuationToken: every order exactly once, even orders placed in the same millisecond', async () => {
    const customerId = uniqueId('cust');
    const placed = await Promise.all(Array.from({ length: 7 }, () => newOrder(customerId)));
    for (const limit of [1, 2, 3, 7]) {
      const { items, pages } = await allPages(`/customers/${customerId}/orders`, limit);
      expect(items.map((o) => o.id).sort()).toEqual([...placed].sort());
      expect(pages).toBe(Math.ceil(7 / limit));
      const created = items.map((o) => o.createdAt);
      expect([...created].sort()).toEqual(created);
    }
    // A limit larger than the list: one page, no token.
    const whole = (await request(http).get(`/customers/${customerId}/orders?limit=8`).expect(200)).body as PageBody;
    expect(whole.items).toHaveLength(7);
    expect(whole).not.toHaveProperty('continuationToken');
  });
});

describe('GET /orders?status=', () => {
  it('lists an order under its status only, and moves it when the status changes', async () => {
    const id = await newOrder(undefined, [{ sku: 'a', quantity: 1, unitPrice: 1 }]);
    const other = await newOrder();
    const where = async (orderId: string) => {
      const found: string[] = [];
      for (const status of ['open', 'submitted', 'shipped', 'cancelled']) if ((await statusIds(status)).includes(orderId)) found.push(status);
      return found;
    };
    expect(await where(id)).toEqual(['open']);
    await request(http).post(path(id, '/submit')).expect(200);
    expect(await where(id)).toEqual(['submitted']);
    await request(http).post(path(id, '/ship')).expect(200);
    expect(await where(id)).toEqual(['shipped']);
    await request(http).post(path(other, '/cancel')).expect(200);
    expect(await where(other)).toEqual(['cancelled']);
  });

  it('answers orders of that status only, least recently changed first, each in the order shape', async () => {
    await newOrder();
    const { items } = await allPages('/orders?status=open', 1000);
    expect(items.length).toBeGreaterThan(0);
    expect(items.every((o) => o.status === 'open')).toBe(true);
    const updated = items.map((o) => o.updatedAt);
    expect([...updated].sort()).toEqual(updated);
    expect(Object.keys(items[0]).sort()).toEqual(['createdAt', 'customerId', 'id', 'lines', 'status', 'total', 'updatedAt', 'version']);
  });

  it('pages with limit and continuationToken: the same orders as one page, none twice, none missed', async () => {
    await Promise.all(Array.from({ length: 5 }, () => newOrder()));
    const whole = (await request(http).get('/orders?status=open&limit=1000').expect(200)).body as PageBody;
    expect(whole.items.length).toBeGreaterThanOrEqual(5);
    for (const limit of [1, 2, 3]) {
      const { items, pages } = await allPages('/orders?status=open', limit);
      expect(items.map((o) => o.id)).toEqual(whole.items.map((o) => o.id));
      expect(pages).toBe(Math.ceil(whole.items.length / limit));
    }
  });

  it.each([
    ['no status', '/orders'],
    ['an unknown status', '/orders?status=pending'],
    ['a status in capitals', '/orders?status=OPEN'],
    ['an empty status', '/orders?status='],
    ['two statuses', '/orders?status=open&status=shipped'],
  ])('answers 400 with a JSON error for %s', async (_what, url) => {
    const res = await request(http).get(url).expect(400);
    expectErrorBody(res, 400);
    expect(res.body.field).toBe('status');
  });
});

describe('the list endpoints refuse bad paging parameters', () => {
  const lists = ['/orders?status=open&', '/customers/c-1/orders?'];
  it.each(lists.flatMap((list) => ['limit=0', 'limit=-1', 'limit=abc', 'limit=1.5', 'limit=', 'limit=1001', 'limit=1&limit=2'].map((q) => [`${list}${q}`])))(
    'answers 400 with a JSON error for %s',
    async (url) => {
      const res = await request(http).get(url).expect(400);
      expectErrorBody(res, 400);
      expect(res.body.field).toBe('limit');
    },
  );

  it.each(lists)('answers 400 for a continuationToken this service did not issue (%s)', async (list) => {
    const res = await request(http).get(`${list}continuationToken=bm90LWEtdG9rZW4`).expect(400);
    expectErrorBody(res, 400);
    expect(res.body.field).toBe('continuationToken');
  });
});

describe('concurrent commands on one order', () => {
  // Counts the saves that lost a race: within one instance, commands on one order queue up and never race.
  let conflicts = 0;
  beforeAll(() => {
    const events = service.app.get<SnapshotTailStore & TipStore>(SNAPSHOT_TAIL_STORE);
    const save = events.save.bind(events);
    const saveWithTip = events.saveWithTip.bind(events);
    events.save = async (...args) => {
      try {
        return await save(...args);
      } catch (err) {
        if (isConflict(err)) conflicts++;
        throw err;
      }
    };
    events.saveWithTip = async (...args) => {
      try {
        return await saveWithTip(...args);
      } catch (err) {
        if (isConflict(err)) conflicts++;
        throw err;
      }
    };
  });

  it('three concurrent POST /orders/:id/lines all succeed and each line is on the order exactly once', async () => {
    for (let round = 0; round < 3; round++) {
      const id = await newOrder();
      const lines = [1, 2, 3].map((n) => ({ sku: `sku-${n}`, quantity: n, unitPrice: n * 10 }));
      const responses = await Promise.all(lines.map((line) => request(http).post(path(id, '/lines')).send(line)));
      expect(responses.map((r) => [r.status, r.body.statusCode])).toEqual([
        [200, undefined],
        [200, undefined],
        [200, undefined],
      ]);
      // Every command got a version of its own.
      expect(responses.map((r) => r.body.version as number).sort()).toEqual([2, 3, 4]);
      const order = await getOrder(id);
      expect(order.version).toBe(4);
      expect([...order.lines].sort((x, y) => x.sku.localeCompare(y.sku))).toEqual(lines);
      expect(order.total).toBe('140.00');
      const history = (await request(http).get(path(id, '/history')).expect(200)).body as HistoryBody;
      expect(history.events.map((e) => e.version)).toEqual([1, 2, 3, 4]);
      expect(history.events.filter((e) => e.type === 'LineAdded').map((e) => e.sku as string).sort()).toEqual(['sku-1', 'sku-2', 'sku-3']);
    }
    expect(conflicts).toBe(0);
  });

  it('a burst of 20 concurrent POST /orders/:id/lines: all accepted, each line once in the history', async () => {
    const id = await newOrder();
    const lines = Array.from({ length: 20 }, (_, n) => ({ sku: `burst-${n}`, quantity: 1, unitPrice: 1 }));
    const before = conflicts;
    const responses = await Promise.all(lines.map((line) => request(http).post(path(id, '/lines')).send(line)));
    expect(responses.filter((r) => r.status !== 200).map((r) => [r.status, r.body])).toEqual([]);
    expect(responses.map((r) => r.body.version as number).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
    const history = (await request(http).get(path(id, '/history')).expect(200)).body as HistoryBody;
    expect(history.events.map((e) => e.version)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
    expect(history.events.slice(1).map((e) => e.sku as string).sort()).toEqual(lines.map((l) => l.sku).sort());
    expect(conflicts).toBe(before);
  });

  it('three concurrent additions of one sku add up to three times the quantity', async () => {
    const id = await newOrder();
    const responses = await Promise.all([1, 2, 3].map(() => request(http).post(path(id, '/lines')).send({ sku: 'same', quantity: 2, unitPrice: 1 })));
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(await getOrder(id)).toMatchObject({ version: 4, lines: [{ sku: 'same', quantity: 6, unitPrice: 1 }] });
  });

  it('three concurrent POST /orders with one orderId: one 201, the others 409, and the winner’s customer', async () => {
    const orderId = uniqueId('ord');
    const responses = await Promise.all(
      ['c-a', 'c-b', 'c-c'].map((customerId) => request(http).post('/orders').send({ customerId, orderId })),
    );
    const statuses = responses.map((r) => r.status);
    expect([...statuses].sort()).toEqual([201, 409, 409]);
    const winner = ['c-a', 'c-b', 'c-c'][statuses.indexOf(201)];
    expect(await getOrder(orderId)).toMatchObject({ customerId: winner, version: 1 });
    const history = (await request(http).get(path(orderId, '/history')).expect(200)).body as HistoryBody;
    expect(history.events).toHaveLength(1);
  });

  it('a concurrent ship and cancel of a submitted order: one wins, the other is re-checked on fresh state (409)', async () => {
    for (let round = 0; round < 3; round++) {
      const id = await newOrder(undefined, [{ sku: 'a', quantity: 1, unitPrice: 1 }]);
      await request(http).post(path(id, '/submit')).expect(200);
      const [ship, cancel] = await Promise.all([request(http).post(path(id, '/ship')), request(http).post(path(id, '/cancel'))]);
      expect([ship.status, cancel.status].sort()).toEqual([200, 409]);
      const order = await getOrder(id);
      expect(order).toMatchObject({ status: ship.status === 200 ? 'shipped' : 'cancelled', version: 4 });
    }
  });
});

describe('an order whose stream holds a record the repository cannot replay', () => {
  // Written past the HTTP API (which refuses the Order/ namespace), as another writer of the container could.
  async function poisoned(data: Uint8Array): Promise<string> {
    const id = await newOrder(undefined, [{ sku: 'a', quantity: 1, unitPrice: 1 }]);
    await service.app.get<SnapshotTailStore>(SNAPSHOT_TAIL_STORE).save(`Order/${id}`, [{ version: 3, data }]);
    return id;
  }

  it.each([
    ['bytes that are not an event', new TextEncoder().encode('{"placed":true}')],
    [
      'an event type Order does not know',
      new TextEncoder().encode(JSON.stringify({ type: 'Forged', aggregateId: 'x', version: 3, at: 0, actor: 'mallory', payload: {} })),
    ],
  ])('answers 500 with the JSON error naming the order and version for %s, logged once without a stack', async (_what, data) => {
    const id = await poisoned(data);
    for (const [method, url] of [
      ['post', path(id, '/submit')],
      ['get', path(id, '/history')],
    ] as const) {
      const mark = logger.lines.length;
      const res = await request(http)[method](url).expect(500);
      expect(res.body).toEqual({
        statusCode: 500,
        error: 'Internal Server Error',
        message: expect.stringMatching(new RegExp(`^Order "${id}" cannot be read: its stored event at version 3 `)),
      });
      // The filter's lines only (the order-stats subscriber has its own say about the record).
      const logged = logger.lines.slice(mark).filter((l) => l.level === 'error' && l.message.endsWith('EventStoreExceptionFilter'));
      expect(logged).toHaveLength(1);
      expect(logged[0].message).toContain(`"Order/${id}"`);
      expect(logged[0].message).toContain('version 3');
      expect(logged[0].message).not.toMatch(/\n\s+at /);
    }
  });
});

describe('a command that keeps losing the race', () => {
  it('answers 409 retryable, without the internal stream name, once the retry budget is spent', async () => {
    const id = await newOrder();
    // Every save of this order conflicts, as if other commands always got there first.
    const events = service.app.get<SnapshotTailStore & TipStore>(SNAPSHOT_TAIL_STORE);
    const save = events.save.bind(events);
    const saveWithTip = events.saveWithTip.bind(events);
    const { ConcurrencyError } = await import('../../src/index.js');
    events.save = async (streamId, records, options) => {
      if (streamId === `Order/${id}`) throw new ConcurrencyError(streamId, [records[0].version]);
      return save(streamId, records, options);
    };
    events.saveWithTip = async (streamId, records, tip, options) => {
      if (streamId === `Order/${id}`) throw new ConcurrencyError(streamId, [records[0].version]);
      return saveWithTip(streamId, records, tip, options);
    };
    try {
      const res = await request(http).post(path(id, '/lines')).send({ sku: 'a', quantity: 1, unitPrice: 1 }).expect(409);
      expect(res.body).toMatchObject({ statusCode: 409, error: 'Conflict', retryable: true });
      expect(res.body.message).toMatch(/run it again/);
      expect(JSON.stringify(res.body)).not.toContain('Order/');
    } finally {
      events.save = save;
      events.saveWithTip = saveWithTip;
    }
  }, 15_000);
});
