/*
 * One id rule on every route (orders, raw aggregates, materialized documents, protosource): no control
 * character anywhere, not `.` or `..` as a whole id (WHATWG URL clients collapse `/orders/%2E%2E` to `/`,
 * so such an order could never be addressed), stream ids keep their `/`; the x-actor rules on the
 * protosource commands too; bodies that are JSON but not objects refused naming `body`; protosource's
 * 404/405 in its documented error shape.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { fromBinary } from '@bufbuild/protobuf';
import { ApiErrorSchema } from '../../src/protosource.js';
import { CapturingLogger, startService, type ServiceUnderTest } from '../support/app.js';

const logger = new CapturingLogger();
let service: ServiceUnderTest;
let http: ServiceUnderTest['http'];

beforeAll(async () => {
  service = await startService({ COSMOS_DATABASE: `ids-${randomUUID()}` }, logger);
  http = service.http;
});

afterAll(() => service?.close());

const P = '/example/app/order/v1';
const JSON_BOTH = { 'Content-Type': 'application/json', Accept: 'application/json' };
const record = { version: 1, data: Buffer.from('{}').toString('base64') };

describe('the orders routes', () => {
  it.each(['.', '..'])('refuse %j as an order id, a customer id or a sku, naming the field', async (id) => {
    expect((await request(http).post('/orders').send({ customerId: 'c-1', orderId: id }).expect(400)).body).toMatchObject({ field: 'orderId' });
    expect((await request(http).post('/orders').send({ customerId: id }).expect(400)).body).toMatchObject({ field: 'customerId' });
    const { body } = await request(http).post('/orders').send({ customerId: 'c-1' }).expect(201);
    const line = await request(http).post(`/orders/${body.id}/lines`).send({ sku: id, quantity: 1, unitPrice: 1 }).expect(400);
    expect(line.body).toMatchObject({ field: 'sku' });
    const encoded = id.replace(/\./g, '%2E');
    expect((await request(http).get(`/orders/${encoded}`).expect(400)).body).toMatchObject({ field: 'id' });
    expect((await request(http).get(`/orders/${encoded}/history`).expect(400)).body).toMatchObject({ field: 'id' });
    expect((await request(http).get(`/customers/${encoded}/orders`).expect(400)).body).toMatchObject({ field: 'id' });
    expect((await request(http).get(`/order-stats/customers/${encoded}`).expect(400)).body).toMatchObject({ field: 'id' });
  });

  it('still takes ids with dots inside them', async () => {
    await request(http).post('/orders').send({ customerId: 'c.1', orderId: `o...${randomUUID()}` }).expect(201);
  });
});

describe('the x-actor rules', () => {
  it('hold on every route, reads included', async () => {
    for (const path of ['/orders/o-1', '/order-stats', '/aggregates/raw-1/events', '/health/live']) {
      const res = await request(http).get(path).set('x-actor', 'a'.repeat(201)).expect(400);
      expect(res.body).toMatchObject({ statusCode: 400, field: 'x-actor' });
    }
    // Header bytes go as latin1: UTF-8 text is sent as its bytes.
    await request(http).get('/order-stats').set('x-actor', Buffer.from('zoë').toString('latin1')).expect(200);
    for (const path of [`${P}/o-1`, `${P}/load/o-1`, `${P}/o-1/history`, `${P}/query/by-customer-id?customer_id=c-1`]) {
      const res = await request(http).get(path).set('Accept', 'application/json').set('x-actor', 'a'.repeat(201)).expect(400);
      expect(res.body).toMatchObject({ message: expect.stringContaining('x-actor') });
    }
  });
});

describe('the raw aggregate routes', () => {
  it.each(['%00', '%0A', 'a%7Fb', '%C2%85', '%2E', '%2E%2E'])('refuse the stream id %s, naming id, and store nothing', async (id) => {
    expect((await request(http).post(`/aggregates/${id}/events`).send({ records: [record] }).expect(400)).body).toMatchObject({ field: 'id' });
    expect((await request(http).get(`/aggregates/${id}/events`).expect(400)).body).toMatchObject({ field: 'id' });
  });

  it('keep the / of stream ids such as Order/o-1', async () => {
    const { body } = await request(http).post('/orders').send({ customerId: 'c-1' }).expect(201);
    const { records } = (await request(http).get(`/aggregates/${encodeURIComponent(`Order/${body.id}`)}/events`).expect(200)).body;
    expect(records).toHaveLength(1);
    const raw = `raw/${randomUUID()}`;
    await request(http).post(`/aggregates/${encodeURIComponent(raw)}/events`).send({ records: [record] }).expect(201);
  });

  it('refuse a control character in a materialized key', async () => {
    expect((await request(http).get('/materialized/a%00/b').expect(400)).body).toMatchObject({ field: 'pk' });
    expect((await request(http).get('/materialized/a/%2E%2E').expect(400)).body).toMatchObject({ field: 'sk' });
  });
});

describe('the protosource routes', () => {
  const post = (command: string, body: unknown, headers: Record<string, string> = {}) =>
    request(http).post(`${P}/${command}`).set(JSON_BOTH).set(headers).send(body as object);

  it.each(['.', '..', 'a\u0000b', 'line\nbreak', '\u0085'])('refuse the id %j in a command, storing nothing', async (id) => {
    const refused = await post('create', { id, customerId: 'c-1' }).expect(400);
    expect(refused.body).toMatchObject({ code: 'CMD_VALIDATION', message: expect.stringContaining('id') });
    await request(http).get(`${P}/load/${encodeURIComponent(id).replace(/\./g, '%2E')}`).set('Accept', 'application/json').expect(400);
  });

  it('refuse such an id as the customer_id of a query', async () => {
    const res = await request(http).get(`${P}/query/by-customer-id?customer_id=%00`).set('Accept', 'application/json').expect(400);
    expect(res.body).toMatchObject({ code: 'QUERY_BAD_PARAM', message: expect.stringContaining('customer_id') });
  });

  it('refuse such ids in their read paths, in the error shape', async () => {
    for (const path of [`${P}/%2E%2E`, `${P}/load/%2E`, `${P}/%00/history`, `${P}/a%0Ab`]) {
      const res = await request(http).get(path).set('Accept', 'application/json').expect(400);
      expect(res.body).toEqual({ code: expect.stringMatching(/_BAD_ID$/), message: expect.any(String) });
    }
  });

  it('apply the x-actor rules to commands: too long, a control character; UTF-8 kept', async () => {
    const id = `o-${randomUUID()}`;
    const long = await post('create', { id, customerId: 'c-1' }, { 'x-actor': 'a'.repeat(5000) }).expect(400);
    expect(long.body).toMatchObject({ code: 'CMD_VALIDATION', message: expect.stringContaining('x-actor') });
    const control = await post('create', { id, customerId: 'c-1' }, { 'x-actor': 'a\tb' }).expect(400);
    expect(control.body).toMatchObject({ code: 'CMD_VALIDATION' });
    await request(http).get(`${P}/load/${id}`).set('Accept', 'application/json').expect(404);
    await post('create', { id, customerId: 'c-1' }, { 'x-actor': 'zoë' }).expect(200);
    const loaded = (await request(http).get(`${P}/load/${id}`).set('Accept', 'application/json').expect(200)).body as { createBy: string };
    expect(loaded.createBy).toBe('zoë');
  });

  it('answer 404 for the history of an unknown id, and 404/405 off the routes, in the documented error shape', async () => {
    const history = await request(http).get(`${P}/nope-${randomUUID()}/history`).set('Accept', 'application/json').expect(404);
    expect(history.body).toEqual({ code: 'HIST_NOT_FOUND', message: 'aggregate not found' });
    const off = await request(http).get(`${P}/a/b/c`).set('Accept', 'application/json').expect(404);
    expect(off.body).toMatchObject({ code: 'NOT_FOUND' });
    const method = await request(http).put(`${P}/o-1`).set('Accept', 'application/json').expect(405);
    expect(method.body).toMatchObject({ code: 'METHOD_NOT_ALLOWED' });
    expect(method.headers.allow).toBe('GET, HEAD');
  });

  it('refuse a body that is not JSON, or not UTF-8, as CMD_UNMARSHAL in their error shape (JSON or binary, as Accept says)', async () => {
    for (const body of ['nul', '{"id":', "{'id':1}"]) {
      const res = await request(http).post(`${P}/create`).set(JSON_BOTH).send(body).expect(400);
      expect(res.body).toEqual({ code: 'CMD_UNMARSHAL', message: 'invalid request body', detail: expect.stringMatching(/not valid JSON/) });
    }
    const bytes = Buffer.concat([Buffer.from('{"id":"o-'), Buffer.from([0xff]), Buffer.from('"}')]);
    const utf8 = await request(http).post(`${P}/create`).set(JSON_BOTH).serialize(() => bytes as never).send({}).expect(400);
    expect(utf8.body).toMatchObject({ code: 'CMD_UNMARSHAL', detail: expect.stringContaining('UTF-8') });
    // Binary apierror to a client asking for protobuf.
    const binary = await request(http).post(`${P}/create`).set('Content-Type', 'application/json').send('nul').buffer(true).parse((res, done) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => done(null, Buffer.concat(chunks)));
    }).expect(400);
    expect(binary.headers['content-type']).toBe('application/protobuf');
    expect(fromBinary(ApiErrorSchema, binary.body as Buffer)).toMatchObject({ code: 'CMD_UNMARSHAL' });
    // Refusals of the body before the route runs: their shape too.
    const type = await request(http).post(`${P}/create`).set('Content-Type', 'text/plain').set('Accept', 'application/json').send('hi').expect(415);
    expect(type.body).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE', message: expect.stringContaining('application/protobuf') });
    const charset = await request(http).post(`${P}/create`).set('Content-Type', 'application/json; charset=latin1').set('Accept', 'application/json').send('{}').expect(415);
    expect(charset.body).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE' });
    const large = await request(http).post(`${P}/create`).set(JSON_BOTH).send(`{"id":"${'x'.repeat(17 * 2 ** 20)}"}`).expect(413);
    expect(large.body).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
  });

  it('refuse a path that is not valid percent-encoding in their error shape', async () => {
    const get = await request(http).get(`${P}/%FF`).set('Accept', 'application/json').expect(400);
    expect(get.body).toMatchObject({ code: 'GET_BAD_ID', message: expect.stringContaining('percent-encoded') });
    expect((await request(http).get(`${P}/load/%FF`).set('Accept', 'application/json').expect(400)).body).toMatchObject({ code: 'LOAD_BAD_ID' });
    expect((await request(http).get(`${P}/%FF/history`).set('Accept', 'application/json').expect(400)).body).toMatchObject({ code: 'HIST_BAD_ID' });
    expect((await request(http).post(`${P}/%FF`).set(JSON_BOTH).send({}).expect(404)).body).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('refuse a body that is JSON but not an object', async () => {
    for (const body of ['null', '42', '"str"', '[]']) {
      const res = await request(http).post(`${P}/create`).set(JSON_BOTH).send(body).expect(400);
      expect(res.body).toMatchObject({ code: 'CMD_UNMARSHAL', detail: expect.stringContaining('must be a JSON object') });
    }
  });
});

describe('bodies that are not JSON at all', () => {
  it.each(['nul', '{"customerId":', '{\'a\':1}'])('%s is refused with 400 naming body', async (body) => {
    const res = await request(http).post('/orders').set('Content-Type', 'application/json').send(body).expect(400);
    expect(res.body).toMatchObject({ statusCode: 400, error: 'Bad Request', field: 'body', message: expect.stringMatching(/^body: is not valid JSON/) });
  });
});

describe('bodies that are JSON but not objects', () => {
  it.each(['null', '42', '"str"', 'true', '[]'])('%s is refused with 400 naming body, on every route that takes one', async (body) => {
    const { body: order } = await request(http).post('/orders').send({ customerId: 'c-1' }).expect(201);
    for (const path of ['/orders', `/orders/${order.id}/lines`, `/orders/${order.id}/submit`, '/aggregates/raw-x/events']) {
      const res = await request(http).post(path).set('Content-Type', 'application/json').send(body).expect(400);
      expect(res.body).toMatchObject({ statusCode: 400, field: 'body' });
      expect(res.body.message).not.toMatch(/Unexpected token|not valid JSON|no body \(or/);
    }
  });
});
