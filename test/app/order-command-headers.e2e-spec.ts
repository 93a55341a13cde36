/*
 * The orders service's command headers end to end (issue 16): Idempotency-Key on every command route, If-Match
 * on every order command, ETag and If-None-Match on GET /orders/:id; the real AppModule on the embedded server.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { CapturingLogger, startService, type ServiceUnderTest } from '../support/app.js';

const logger = new CapturingLogger();
let service: ServiceUnderTest;
let http: ServiceUnderTest['http'];

beforeAll(async () => {
  service = await startService({ COSMOS_DATABASE: `command-headers-${randomUUID()}` }, logger);
  http = service.http;
});

afterAll(() => service?.close());

const path = (id: string, rest = '') => `/orders/${encodeURIComponent(id)}${rest}`;

async function newOrder(): Promise<string> {
  const { body } = await request(http).post('/orders').send({ customerId: `c-${randomUUID()}` }).expect(201);
  await request(http).post(path(body.id, '/lines')).send({ sku: 'tea', quantity: 1, unitPrice: 2 }).expect(200);
  return body.id as string;
}

async function versions(id: string): Promise<number[]> {
  const { body } = await request(http).get(path(id, '/history')).expect(200);
  return (body.events as Array<{ version: number }>).map((e) => e.version);
}

/** Every command route of an order: method, path, body. */
const commands = (id: string): Array<[string, string, object | undefined]> => [
  ['post', path(id, '/lines'), { sku: 'cake', quantity: 2, unitPrice: 3 }],
  ['delete', path(id, '/lines/tea'), undefined],
  ['post', path(id, '/submit'), undefined],
  ['post', path(id, '/ship'), undefined],
];

function send(method: string, url: string, body: object | undefined, headers: Record<string, string>) {
  const req = method === 'post' ? request(http).post(url) : request(http).delete(url);
  req.set(headers);
  return body === undefined ? req : req.send(body);
}

describe('Idempotency-Key', () => {
  it('a repeated key answers the first outcome on every command route and stores nothing', async () => {
    const id = await newOrder();
    for (const [method, url, body] of commands(id)) {
      const key = randomUUID();
      const first = await send(method, url, body, { 'Idempotency-Key': key });
      expect(first.status).toBe(200);
      const stored = await versions(id);
      const again = await send(method, url, body, { 'Idempotency-Key': key });
      expect([again.status, again.body]).toEqual([first.status, first.body]);
      expect(await versions(id)).toEqual(stored);
    }
    // Without a key, the same command is a new one: ship again is refused by the state.
    await request(http).post(path(id, '/ship')).expect(409);
  });

  it('a keyed create answers the same order and status again; a new key places another', async () => {
    const key = randomUUID();
    const customerId = `c-${randomUUID()}`;
    const first = await request(http).post('/orders').set('Idempotency-Key', key).send({ customerId }).expect(201);
    const again = await request(http).post('/orders').set('Idempotency-Key', key).send({ customerId }).expect(201);
    expect(again.body).toEqual(first.body);
    expect(await versions(first.body.id as string)).toEqual([1]);
    const other = await request(http).post('/orders').set('Idempotency-Key', randomUUID()).send({ customerId }).expect(201);
    expect(other.body.id).not.toBe(first.body.id);
    // With an explicit orderId too.
    const orderId = `o-${randomUUID()}`;
    await request(http).post('/orders').set('Idempotency-Key', key).send({ customerId, orderId }).expect(201);
    await request(http).post('/orders').set('Idempotency-Key', key).send({ customerId, orderId }).expect(201);
    // Without the key, the create of an existing order is a conflict.
    await request(http).post('/orders').send({ customerId, orderId }).expect(409);
  });

  it('the same key with another body is 422 and stores nothing', async () => {
    const id = await newOrder();
    const key = randomUUID();
    await request(http).post(path(id, '/lines')).set('Idempotency-Key', key).send({ sku: 'cake', quantity: 2, unitPrice: 3 }).expect(200);
    const res = await request(http).post(path(id, '/lines')).set('Idempotency-Key', key).send({ sku: 'cake', quantity: 5, unitPrice: 3 }).expect(422);
    expect(res.body.message).toMatch(/idempotency key/);
    // Another command with the key, too; and a create with the key but another customer.
    await request(http).post(path(id, '/submit')).set('Idempotency-Key', key).expect(422);
    expect(await versions(id)).toEqual([1, 2, 3]);
    const create = randomUUID();
    await request(http).post('/orders').set('Idempotency-Key', create).send({ customerId: 'a' }).expect(201);
    await request(http).post('/orders').set('Idempotency-Key', create).send({ customerId: 'b' }).expect(422);
  });

  it('refuses a key that is empty, too long, not visible ASCII or repeated, naming the header', async () => {
    const id = await newOrder();
    for (const key of ['', 'x'.repeat(201), 'a b', 'k\u00e9']) {
      const res = await request(http).post(path(id, '/submit')).set('Idempotency-Key', key);
      expect([res.status, res.body.field]).toEqual([400, 'Idempotency-Key']);
    }
    const twice = await request(http).post(path(id, '/submit')).set('Idempotency-Key', ['a', 'b'] as unknown as string);
    expect([twice.status, twice.body.field]).toEqual([400, 'Idempotency-Key']);
    expect(await versions(id)).toEqual([1, 2]);
    await request(http).post(path(id, '/submit')).set('Idempotency-Key', 'x'.repeat(200)).expect(200);
  });
});

describe('If-Match and ETag', () => {
  it('GET /orders/:id answers its version as ETag and 304 to If-None-Match naming it', async () => {
    const id = await newOrder();
    const res = await request(http).get(path(id)).expect(200);
    expect(res.headers.etag).toBe('"2"');
    expect(res.body.version).toBe(2);
    const cached = await request(http).get(path(id)).set('If-None-Match', '"2"').expect(304);
    expect(cached.text).toBe('');
    await request(http).get(path(id)).set('If-None-Match', '"1"').expect(200);
    await request(http).post(path(id, '/submit')).expect(200);
    const changed = await request(http).get(path(id)).set('If-None-Match', '"2"').expect(200);
    expect(changed.headers.etag).toBe('"3"');
  });

  it('every order command honours If-Match: the current version runs it, another is 412 with the current version', async () => {
    const id = await newOrder();
    for (const [method, url, body] of commands(id)) {
      const { version } = (await request(http).get(path(id)).expect(200)).body as { version: number };
      const stale = await send(method, url, body, { 'If-Match': `"${version - 1}"` });
      expect(stale.status).toBe(412);
      expect(stale.body).toMatchObject({ statusCode: 412, error: 'Precondition Failed', version });
      expect(await versions(id)).toHaveLength(version);
      const etag = (await request(http).get(path(id))).headers.etag as string;
      await send(method, url, body, { 'If-Match': etag }).expect(200);
    }
    await request(http).post(path(id, '/cancel')).set('If-Match', '"1"').expect(412);
    // A create with If-Match "0": the order must not exist yet.
    const orderId = `o-${randomUUID()}`;
    await request(http).post('/orders').set('If-Match', '"0"').send({ customerId: 'c', orderId }).expect(201);
    const again = await request(http).post('/orders').set('If-Match', '"0"').send({ customerId: 'c', orderId }).expect(412);
    expect(again.body.version).toBe(1);
  });

  it('refuses an If-Match that is not one quoted version, naming the header', async () => {
    const id = await newOrder();
    for (const tag of ['2', 'W/"2"', '"-1"', '"2", "3"', '"x"', '*']) {
      const res = await request(http).post(path(id, '/submit')).set('If-Match', tag);
      expect([res.status, res.body.field]).toEqual([400, 'If-Match']);
    }
    expect(await versions(id)).toEqual([1, 2]);
  });
});
