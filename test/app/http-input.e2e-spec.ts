/*
 * The service's HTTP rules, whatever the route: every refusal is a 4xx with the JSON error shape
 * { statusCode, error, message } (Nest's, express's and Node's own refusals included) and never a stack in
 * the log; a known path with another method is 405 with Allow; no framework banner; one rule per concern
 * for query parameters, page sizes, continuation tokens, body fields and the x-actor header.
 */
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { AGGREGATE_STORE, getAggregateRepositoryToken, type AggregateStore, type AggregateRepository } from '../../src/index.js';
import { Order } from '../../example/src/modules/orders/index.js';
import { issueToken } from '../../example/src/http/request-input.js';
import { CapturingLogger, startService, type ServiceUnderTest } from '../support/app.js';

const logger = new CapturingLogger();
let service: ServiceUnderTest;
let http: ServiceUnderTest['http'];

beforeAll(async () => {
  service = await startService({ COSMOS_DATABASE: `http-${randomUUID()}` }, logger);
  http = service.http;
});

afterAll(() => service?.close());

const uniqueId = (prefix: string) => `${prefix}-${randomUUID()}`;

async function port(): Promise<number> {
  if (!http.listening) await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return (http.address() as { port: number }).port;
}

/** Sends `head` (the request line and headers, as bytes) and a body, as curl would; answers status and body. */
async function rawRequest(head: Buffer, body = ''): Promise<{ status: number; text: string }> {
  const to = await port();
  const answer = await new Promise<string>((resolve, reject) => {
    let text = '';
    // write, not end: a half-closed connection may be dropped before the answer is written.
    const socket = connect(to, '127.0.0.1', () => socket.write(Buffer.concat([head, Buffer.from(body)])));
    socket.on('data', (chunk) => (text += chunk.toString('utf8')));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]), text: answer.slice(answer.indexOf('\r\n\r\n') + 4) };
}

/** `POST /orders` with the x-actor header's bytes exactly as given (curl sends what the terminal typed: UTF-8). */
async function placeWithActorBytes(actor: Buffer, orderId = uniqueId('ord')): Promise<{ status: number; text: string; orderId: string }> {
  const body = JSON.stringify({ customerId: 'c', orderId });
  const head = Buffer.concat([
    Buffer.from(`POST /orders HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nx-actor: `),
    actor,
    Buffer.from('\r\n\r\n'),
  ]);
  return { ...(await rawRequest(head, body)), orderId };
}

/** The documented error body, and no stack trace logged for it. */
function expectError(res: request.Response, statusCode: number, field?: string): void {
  expect(res.status).toBe(statusCode);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.body).toMatchObject({ statusCode, error: expect.any(String), message: expect.any(String) });
  expect(res.body.error).not.toBe('');
  if (field !== undefined) expect(res.body.field).toBe(field);
}

async function placeOrder(customerId = uniqueId('cust'), actor?: string): Promise<string> {
  const call = request(http).post('/orders').send({ customerId });
  if (actor !== undefined) call.set('x-actor', actor);
  return (await call.expect(201)).body.id as string;
}

describe('the JSON error shape for the refusals of the framework', () => {
  it('413 for a body over the limit', async () => {
    const res = await request(http).post('/orders').set('content-type', 'application/json').send(`{"customerId":"${'x'.repeat(17 * 2 ** 20)}"}`);
    expectError(res, 413);
    expect(res.body.error).toBe('Payload Too Large');
  });

  it('415 for an unsupported charset and for an unsupported content-encoding', async () => {
    const charset = await request(http).post('/orders').set('content-type', 'application/json; charset=latin1').send('{}');
    expectError(charset, 415);
    expect(charset.body.error).toBe('Unsupported Media Type');
    const encoding = await request(http).post('/orders').set('content-type', 'application/json').set('content-encoding', 'x-unknown').send('{}');
    expectError(encoding, 415);
  });

  it('415 for a protobuf body outside the protosource routes, which alone take one', async () => {
    const res = await request(http).post('/orders').set('content-type', 'application/protobuf').send(Buffer.from([0x0a, 0x01, 0x61]));
    expectError(res, 415);
  });

  it('400 for a body that is not valid UTF-8, rather than storing U+FFFD in its place', async () => {
    const body = Buffer.concat([Buffer.from('{"customerId":"zo'), Buffer.from([0xeb]), Buffer.from('l"}')]);
    // The bytes as they are: superagent would serialize a Buffer to JSON.
    const raw = (bytes: Buffer) => request(http).post('/orders').set('content-type', 'application/json').serialize(() => bytes as never).send({});
    const res = await raw(body);
    expectError(res, 400, 'body');
    expect(res.body.message).toMatch(/UTF-8/);
    // Valid UTF-8 is kept as sent.
    const ok = await raw(Buffer.from('{"customerId":"zoël"}'));
    expect(ok.status).toBe(201);
    expect((await request(http).get(`/orders/${ok.body.id}`).expect(200)).body.customerId).toBe('zoël');
  });

  it('400 for malformed JSON and for a gzip body that is not gzip', async () => {
    expectError(await request(http).post('/orders').set('content-type', 'application/json').send('{"customerId":'), 400);
    expectError(await request(http).post('/orders').set('content-type', 'application/json').set('content-encoding', 'gzip').send('{}'), 400);
  });

  it('404 for an unknown path, and 400 for a path that is not valid percent-encoding', async () => {
    expectError(await request(http).get('/no-such-route'), 404);
    expectError(await request(http).get('/orders/%FF'), 400);
  });

  it('400 naming the path parameter that is not valid percent-encoded UTF-8, as the OpenAPI document names it', async () => {
    expectError(await request(http).get('/orders/%FF'), 400, 'id');
    expectError(await request(http).get('/orders/%E0%A4%A/history'), 400, 'id');
    const sku = await request(http).delete('/orders/o-1/lines/ab%C3');
    expectError(sku, 400, 'sku');
    expect(sku.body.message).toMatch(/^sku: "ab%C3" is not valid percent-encoded UTF-8/);
    expectError(await request(http).get('/customers/%FF/orders'), 400, 'id');
    expectError(await request(http).post('/aggregates/%C0%80/events').send({ records: [] }), 400, 'id');
    expectError(await request(http).get('/materialized/p/%FF'), 400, 'sk');
    expectError(await request(http).get('/no-such-route/%FF'), 404);
  });

  it('431 with the JSON body for request headers over Node’s limit', async () => {
    const res = await request(http).get('/orders?status=open').set('x-padding', 'x'.repeat(20_000));
    expectError(res, 431);
    expect(res.body.error).toBe('Request Header Fields Too Large');
  });

  it('400 with the JSON body for a request that is not HTTP', async () => {
    const { status, text } = await rawRequest(Buffer.from('NOT HTTP AT ALL\r\n\r\n'));
    expect(status).toBe(400);
    expect(JSON.parse(text)).toMatchObject({ statusCode: 400, error: 'Bad Request', message: expect.any(String) });
  });

  it('500 for an unexpected failure: the shape without detail, logged once with its stack', async () => {
    const orders = service.app.get<AggregateRepository<Order>>(getAggregateRepositoryToken(Order));
    const history = orders.history.bind(orders);
    orders.history = () => Promise.reject(new TypeError('a bug, not bad input'));
    const mark = logger.lines.length;
    try {
      const res = await request(http).get('/orders/any/history');
      expectError(res, 500);
      expect(res.body).toEqual({ statusCode: 500, error: 'Internal Server Error', message: expect.not.stringContaining('bug') });
    } finally {
      orders.history = history;
    }
    const logged = logger.lines.slice(mark).filter((l) => l.level === 'error');
    expect(logged).toHaveLength(1);
    expect(logged[0].message).toMatch(/a bug, not bad input/);
  });

  it('logs no stack trace (nor any error) for bad input', async () => {
    const mark = logger.lines.length;
    await request(http).post('/orders').set('content-type', 'application/json').send('{"customerId":');
    await request(http).put('/orders');
    await request(http).get('/orders?status=open&status=shipped');
    await request(http).post('/aggregates/x/events').send({ records: [{ version: 1, data: 'A'.repeat(8_000_000) }] });
    expect(logger.lines.slice(mark).filter((l) => l.level === 'error')).toEqual([]);
  });
});

describe('methods', () => {
  it.each([
    ['PUT', '/orders', 'GET, HEAD, POST'],
    ['DELETE', '/orders', 'GET, HEAD, POST'],
    ['PATCH', '/orders/o-1', 'GET, HEAD'],
    ['GET', '/orders/o-1/lines', 'POST'],
    ['POST', '/orders/o-1/history', 'GET, HEAD'],
    ['PUT', '/aggregates/x/events', 'GET, HEAD, POST'],
    ['DELETE', '/health', 'GET, HEAD'],
  ])('answers %s %s with 405 and Allow: %s', async (method, url, allow) => {
    const res = await request(http)[method.toLowerCase() as 'put'](url);
    expectError(res, 405);
    expect(res.body.error).toBe('Method Not Allowed');
    expect(res.headers.allow).toBe(allow);
  });

  it('answers OPTIONS with 204 and Allow', async () => {
    const res = await request(http).options('/orders/o-1/lines').expect(204);
    expect(res.headers.allow).toBe('POST');
  });

  it('still answers HEAD where GET is', async () => {
    await request(http).head('/health/live').expect(200);
  });
});

it('sends no x-powered-by banner, on success or error', async () => {
  for (const res of [await request(http).get('/health/live'), await request(http).get('/nowhere'), await request(http).put('/orders')]) {
    expect(res.headers['x-powered-by']).toBeUndefined();
  }
});

describe('x-actor', () => {
  const historyActors = async (id: string) =>
    ((await request(http).get(`/orders/${id}/history`).expect(200)).body.events as Array<{ actor: string }>).map((e) => e.actor);

  it('stores a UTF-8 actor as sent (zoë stays zoë, not zoÃ«), and a blank one as anonymous', async () => {
    const sent = await placeWithActorBytes(Buffer.from('zoë 山田', 'utf8'));
    expect(sent.status).toBe(201);
    expect(await historyActors(sent.orderId)).toEqual(['zoë 山田']);
    expect(await historyActors(await placeOrder(undefined, '   '))).toEqual(['anonymous']);
  });

  it('takes 200 characters (counted as characters, not bytes) and refuses 201', async () => {
    const sent = await placeWithActorBytes(Buffer.from('é'.repeat(200), 'utf8'));
    expect(sent.status).toBe(201);
    expect(await historyActors(sent.orderId)).toEqual(['é'.repeat(200)]);
    const res = await request(http).post('/orders').set('x-actor', 'a'.repeat(201)).send({ customerId: 'c' });
    expectError(res, 400, 'x-actor');
  });

  it('refuses bytes that are not UTF-8 with 400, storing nothing', async () => {
    const sent = await placeWithActorBytes(Buffer.from([0x7a, 0x6f, 0xeb])); // "zoë" in latin1
    expect(sent.status).toBe(400);
    expect(JSON.parse(sent.text)).toMatchObject({ statusCode: 400, error: 'Bad Request', field: 'x-actor' });
    await request(http).get(`/orders/${sent.orderId}`).expect(404);
  });

  it.each([
    ['a control character', 'ann\tbob'],
    ['a long value well within the header limit', 'x'.repeat(10_000)],
  ])('refuses %s with 400, storing nothing', async (_what, value) => {
    const orderId = uniqueId('ord');
    const res = await request(http).post('/orders').set('x-actor', value).send({ customerId: 'c', orderId });
    expectError(res, 400, 'x-actor');
    await request(http).get(`/orders/${orderId}`).expect(404);
  });

  it('refuses a repeated x-actor header', async () => {
    const res = await request(http).post('/orders').set('x-actor', ['ann', 'bob'] as unknown as string).send({ customerId: 'c' });
    expectError(res, 400, 'x-actor');
  });
});

describe('query parameters: one rule on every route', () => {
  const lists = ['/orders?status=open&', '/customers/c-1/orders?', '/materialized?pk=p-1&'];

  it.each(lists)('limit is 1 to 1000 (%s)', async (list) => {
    await request(http).get(`${list}limit=1000`).expect(200);
    await request(http).get(`${list}limit=1`).expect(200);
    for (const limit of ['1001', '0', '99999999999999999999', '1e3', '0x10', ' 5']) {
      expectError(await request(http).get(`${list}limit=${encodeURIComponent(limit)}`), 400, 'limit');
    }
  });

  it.each(lists.flatMap((list) => ['limit=', 'continuationToken='].map((q) => [`${list}${q}`])))('an empty value is 400: %s', async (url) => {
    expectError(await request(http).get(url), 400, url.slice(url.lastIndexOf('&') + 1, -1).replace(/^.*\?/, ''));
  });

  it.each([
    ['/orders?status=open&status=shipped', 'status'],
    ['/customers/c-1/orders?continuationToken=a&continuationToken=b', 'continuationToken'],
    ['/materialized?pk=a&limit=1&limit=2', 'limit'],
    ['/aggregates/x/events?tail=1&tail=2', 'tail'],
  ])('a repeated parameter is 400: %s', async (url, field) => {
    expectError(await request(http).get(url), 400, field);
  });

  it.each([
    ['/orders?status=open&sort=desc', 'sort'],
    ['/orders/o-1?expand=lines', 'expand'],
    ['/orders/o-1/history?from=2', 'from'],
    ['/customers/c-1/orders?status=open', 'status'],
    ['/materialized/a/b?x=1', 'x'],
    ['/orders?status[0]=open', 'status[0]'],
  ])('an unknown parameter is 400 naming it: %s', async (url, field) => {
    expectError(await request(http).get(url), 400, field);
  });

  // Routes without parameters of their own: a parameter is refused as their OpenAPI 400 says, not ignored.
  const bare: Array<['get' | 'post' | 'delete', string]> = [
    ['get', '/health'],
    ['get', '/health/live'],
    ['post', '/admin/projections/order-stats/rebuild'],
    ['post', '/admin/subscriptions/order-stats/resume'],
    ['get', '/admin/subscriptions/order-stats/dead-letters'],
    ['post', '/admin/subscriptions/order-stats/dead-letters/d-1/replay'],
    ['delete', '/admin/subscriptions/order-stats/dead-letters/d-1'],
  ];
  it.each(bare.flatMap(([method, path]) => [[method, `${path}?x=1`, 'x'] as const, [method, `${path}?limit=`, 'limit'] as const]))(
    'a route that takes no parameter refuses one, 400 naming it: %s %s',
    async (method, url, field) => {
      expectError(await request(http)[method](url), 400, field);
    },
  );

  it('the rebuild takes no body: a field is 400 naming it, and nothing is rebuilt', async () => {
    expectError(await request(http).post('/admin/projections/order-stats/rebuild').send({ a: 1 }), 400, 'a');
    const { body } = await request(http).get('/order-stats').expect(200);
    expect(body.lag.state).not.toBe('rebuilding');
  });

  it('a raw append with a query parameter is 400, storing nothing', async () => {
    const id = uniqueId('raw');
    expectError(await request(http).post(`/aggregates/${id}/events?atomic=true`).send({ records: [{ version: 1, data: '' }] }), 400, 'atomic');
    expect((await request(http).get(`/aggregates/${id}/events`).expect(200)).body).toEqual({ records: [] });
  });

  it('a command with a query parameter is 400', async () => {
    const id = await placeOrder();
    expectError(await request(http).post(`/orders/${id}/lines?sku=a`).send({ sku: 'a', quantity: 1, unitPrice: 1 }), 400, 'sku');
  });
});

describe('continuation tokens are bound to the query that issued them', () => {
  const customer = uniqueId('cust');
  const other = uniqueId('cust');
  beforeAll(async () => {
    for (let i = 0; i < 3; i++) await placeOrder(customer);
    await placeOrder(other);
    const store = service.app.get<AggregateStore>(AGGREGATE_STORE);
    for (const sk of ['a', 'b', 'c']) {
      await store.saveAggregate({ keys: () => ({ pk: customer, sk, gsi: { 1: { pk: `${customer}-slot`, sk } } }) });
    }
  });

  async function tokenOf(url: string): Promise<string> {
    const { body } = await request(http).get(url).expect(200);
    expect(body.continuationToken).toEqual(expect.any(String));
    return body.continuationToken as string;
  }

  it('a token pages on with the query that issued it, whatever the limit', async () => {
    const token = await tokenOf(`/customers/${customer}/orders?limit=1`);
    const { body } = await request(http).get(`/customers/${customer}/orders?limit=5&continuationToken=${token}`).expect(200);
    expect(body.items).toHaveLength(2);
  });

  it.each([
    ['another customer', (t: string) => `/customers/${other}/orders?continuationToken=${t}`],
    ['another list', (t: string) => `/orders?status=open&continuationToken=${t}`],
    ['the materialized query', (t: string) => `/materialized?pk=${customer}&continuationToken=${t}`],
  ])('a /customers token is refused on %s', async (_what, url) => {
    const token = await tokenOf(`/customers/${customer}/orders?limit=1`);
    expectError(await request(http).get(url(token)), 400, 'continuationToken');
  });

  it('an /orders?status=open token is refused on status=submitted', async () => {
    const token = await tokenOf('/orders?status=open&limit=1');
    expectError(await request(http).get(`/orders?status=submitted&continuationToken=${token}`), 400, 'continuationToken');
  });

  it('a /materialized token from index=1 is refused on index=2, on another pk and with another condition', async () => {
    const token = await tokenOf(`/materialized?index=1&pk=${customer}-slot&limit=1`);
    await request(http).get(`/materialized?index=1&pk=${customer}-slot&limit=1&continuationToken=${token}`).expect(200);
    for (const url of [
      `/materialized?index=2&pk=${customer}-slot&continuationToken=${token}`,
      `/materialized?index=1&pk=${other}&continuationToken=${token}`,
      `/materialized?index=1&pk=${customer}-slot&op=>&value=a&continuationToken=${token}`,
    ]) {
      const res = await request(http).get(url);
      expectError(res, 400, 'continuationToken');
      expect(res.body.message).toMatch(/another query/);
    }
  });

  /** Ways a client (or a proxy) may alter a token: each must be refused, never read as "from the start". */
  const alterations: Array<[string, (t: string) => string]> = [
    ['x appended', (t) => `${t}x`],
    ['AAAA appended (zero bytes)', (t) => `${t}AAAA`],
    ['the last character dropped', (t) => t.slice(0, -1)],
    ['garbage after the query digest', (t) => `${t.slice(0, 16)}-garbage`],
    ['a middle character changed', (t) => `${t.slice(0, 20)}${t[20] === 'A' ? 'B' : 'A'}${t.slice(21)}`],
    ['the last character changed', (t) => `${t.slice(0, -1)}${t.at(-1) === 'A' ? 'B' : 'A'}`],
  ];

  it.each(alterations)('an altered token is 400 naming continuationToken on every list (%s)', async (_what, alter) => {
    for (const url of [`/customers/${customer}/orders?limit=1`, '/orders?status=open&limit=1', `/materialized?index=1&pk=${customer}-slot&limit=1`]) {
      const token = await tokenOf(url);
      const errors = logger.lines.filter((l) => l.level === 'error').length;
      const res = await request(http).get(`${url}&continuationToken=${encodeURIComponent(alter(token))}`);
      expectError(res, 400, 'continuationToken');
      expect(logger.lines.filter((l) => l.level === 'error')).toHaveLength(errors);
    }
  });

  describe('GET /order-stats', () => {
    let statsToken: string;
    beforeAll(async () => {
      // The read model follows the events: wait until it holds both customers, so limit=1 gives a token.
      const deadline = Date.now() + 30_000;
      for (;;) {
        const { body } = await request(http).get('/order-stats?limit=1').expect(200);
        if (body.continuationToken !== undefined) {
          statsToken = body.continuationToken as string;
          return;
        }
        if (Date.now() > deadline) throw new Error('the order statistics never held two customers');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }, 40_000);

    it('pages on with its own token', async () => {
      await request(http).get(`/order-stats?limit=1&continuationToken=${statsToken}`).expect(200);
    });

    it.each(alterations)('an altered token is 400 naming continuationToken, no error logged (%s)', async (_what, alter) => {
      const errors = logger.lines.filter((l) => l.level === 'error').length;
      const res = await request(http).get(`/order-stats?limit=1&continuationToken=${encodeURIComponent(alter(statsToken))}`);
      expectError(res, 400, 'continuationToken');
      expect(logger.lines.filter((l) => l.level === 'error')).toHaveLength(errors);
    });

    it('a token forged with a valid checksum but a store token that cannot be sent is 400, not 500', async () => {
      const errors = logger.lines.filter((l) => l.level === 'error').length;
      const forged = issueToken(['order-stats'], '\u0001garbage\u00ff');
      expectError(await request(http).get(`/order-stats?limit=1&continuationToken=${forged}`), 400, 'continuationToken');
      expect(logger.lines.filter((l) => l.level === 'error')).toHaveLength(errors);
    });
  });
});

describe('body fields: unknown ones are refused, naming the field', () => {
  it.each([
    ['POST /orders', '/orders', { customerId: 'c', colour: 'red' }, 'colour'],
    ['POST /orders with a misspelt field', '/orders', { customerID: 'c' }, 'customerID'],
    ['POST /orders/:id/lines', '/lines', { sku: 'a', quantity: 1, unitPrice: 1, quantiy: 5 }, 'quantiy'],
    ['POST /orders/:id/submit', '/submit', { reason: 'now' }, 'reason'],
    ['POST /orders/:id/cancel', '/cancel', { force: true }, 'force'],
  ])('%s', async (_what, route, body, field) => {
    const url = route === '/orders' ? route : `/orders/${await placeOrder()}${route}`;
    const res = await request(http).post(url).send(body);
    expectError(res, 400, field);
    expect(res.body.message).toMatch(/is not a field of this request/);
  });

  it('a command without input takes no body or an empty object', async () => {
    const id = await placeOrder();
    await request(http).post(`/orders/${id}/lines`).send({ sku: 'a', quantity: 1, unitPrice: 1 }).expect(200);
    await request(http).post(`/orders/${id}/submit`).send({}).expect(200);
    await request(http).post(`/orders/${id}/ship`).expect(200);
  });
});

describe('hostile ids and values', () => {
  it.each([
    ['an id over 200 characters', 'x'.repeat(3000)],
    ['an id with a control character', 'o\u0001x'],
  ])('answers 400 naming the id for %s on every order route', async (_what, id) => {
    const path = `/orders/${encodeURIComponent(id)}`;
    for (const res of [
      await request(http).get(path),
      await request(http).get(`${path}/history`),
      await request(http).post(`${path}/lines`).send({ sku: 'a', quantity: 1, unitPrice: 1 }),
      await request(http).post(`${path}/submit`),
      await request(http).delete(`${path}/lines/a`),
      await request(http).get(`/customers/${encodeURIComponent(id)}/orders`),
    ]) {
      expectError(res, 400, 'id');
    }
  });

  it.each([
    ['a customerId with a lone surrogate', '{"customerId":"c\\ud800"}', /customerId must be well-formed/],
    ['a customerId with a NUL', '{"customerId":"c\\u0000x"}', /customerId must not contain control characters/],
    ['an orderId with a line break', '{"customerId":"c","orderId":"o\\nx"}', /orderId must not contain control characters/],
    ['an orderId with a lone surrogate', '{"customerId":"c","orderId":"o\\ud800"}', /orderId must be well-formed/],
    ['a numeric orderId', '{"customerId":"c","orderId":123}', /orderId must be a non-empty string/],
    ['an empty orderId', '{"customerId":"c","orderId":""}', /orderId must be a non-empty string/],
    ['a quantity as a string', null, /quantity must be a positive integer/],
  ])('refuses %s (422), storing nothing', async (_what, json, problem) => {
    let res: request.Response;
    if (json === null) {
      const id = await placeOrder();
      res = await request(http).post(`/orders/${id}/lines`).send({ sku: 'a', quantity: '2', unitPrice: 1 });
      expect((await request(http).get(`/orders/${id}`).expect(200)).body.version).toBe(1);
    } else {
      res = await request(http).post('/orders').set('content-type', 'application/json').send(json);
    }
    expectError(res, 422);
    expect(res.body.problems.join('; ')).toMatch(problem);
  });
});
