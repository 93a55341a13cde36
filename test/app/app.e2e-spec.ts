/*
 * The HTTP service end to end: the real AppModule, configured from the environment, on the embedded Cosmos
 * server it starts itself (no COSMOS_ENDPOINT), driven over HTTP with supertest.
 */
import { randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import request from 'supertest';
import {
  AGGREGATE_STORE,
  OPAQUE_STORE,
  type AggregateKeys,
  type AggregateStore,
  type Materializable,
  type OpaqueStore,
} from '../../src/index.js';
import { CapturingLogger, startService, type ServiceUnderTest } from '../support/app.js';

const EVENT_TTL_SECONDS = 3600;
const logger = new CapturingLogger();
let service: ServiceUnderTest;
let http: ServiceUnderTest['http'];
let aggregateStore: AggregateStore;
let opaqueStore: OpaqueStore;

beforeAll(async () => {
  // No COSMOS_ENDPOINT: the service starts its embedded server.
  service = await startService(
    { COSMOS_DATABASE: `app-${randomUUID()}`, EVENT_TTL_SECONDS: String(EVENT_TTL_SECONDS) },
    logger,
  );
  http = service.http;
  aggregateStore = service.app.get(AGGREGATE_STORE);
  opaqueStore = service.app.get(OPAQUE_STORE);
});

afterAll(() => service?.close());

const b64 = (text: string) => Buffer.from(text).toString('base64');
const now = () => Math.floor(Date.now() / 1000);
const uniqueId = (prefix: string) => `${prefix}-${randomUUID()}`;

function append(id: string, body: unknown) {
  return request(http).post(`/aggregates/${encodeURIComponent(id)}/events`).send(body as object);
}

describe('start-up', () => {
  it('says the data is in memory only, and logs no key', () => {
    const warning = logger.lines.find((l) => l.level === 'warn' && l.message.includes('embedded Cosmos DB server'));
    expect(warning?.message).toMatch(/in memory only/);
    // The embedded server's key is the emulator's well-known one; no line may carry a key anyway.
    expect(logger.text).not.toMatch(/[A-Za-z0-9+/]{40,}={0,2}/);
  });
});

describe('GET /health', () => {
  it('answers 200 { status: ok } when Cosmos DB answers, with the lag of every subscriber', async () => {
    const res = await request(http).get('/health').expect(200);
    const info = {
      cosmos: { status: 'up' },
      subscriptions: {
        status: 'up',
        subscribers: {
          'order-stats': {
            state: expect.stringMatching(/^(running|not-started)$/),
            estimatedPending: expect.any(Number),
            behindMs: expect.any(Number),
            ownedHere: expect.any(Array),
          },
        },
      },
    };
    // @nestjs/terminus's answer: details repeats info and error together.
    expect(res.body).toEqual({ status: 'ok', info, error: {}, details: info });
  });
});

describe('POST /aggregates/:id/events', () => {
  it('stores a request all or none: taken versions among 100 records store none of them (409 naming them)', async () => {
    const id = uniqueId('batch');
    await append(id, { records: [1, 2, 3].map((version) => ({ version, data: '' })) }).expect(201);
    const records = Array.from({ length: 100 }, (_, i) => ({ version: i + 1, data: '' }));
    const res = await append(id, { records }).expect(409);
    expect(res.body.versions).toEqual([1, 2, 3]);
    const { body } = await request(http).get(`/aggregates/${id}/events`).expect(200);
    expect(body.records.map((r: { version: number }) => r.version)).toEqual([1, 2, 3]);
  });

  it("refuses versions that leave a gap after the stream's last (409 naming lastVersion) or between them (400), storing nothing", async () => {
    const id = uniqueId('gap');
    const records = (versions: number[]) => ({ records: versions.map((version) => ({ version, data: b64(`e${version}`) })) });
    const stored = async () => ((await request(http).get(`/aggregates/${id}/events`).expect(200)).body.records as Array<{ version: number }>).map((r) => r.version);
    // A new stream starts at 1.
    const first = await append(id, records([2])).expect(409);
    expect(first.body).toMatchObject({ statusCode: 409, error: 'Conflict', field: 'records', lastVersion: 0 });
    expect(first.body.message).toMatch(/write version 1 next/);
    await append(id, records([1, 2, 3])).expect(201);
    const gap = await append(id, records([7])).expect(409);
    expect(gap.body).toMatchObject({ statusCode: 409, field: 'records', lastVersion: 3 });
    expect(gap.body.message).toMatch(/stream's last is 3.*write version 4 next/);
    const inside = await append(id, records([4, 6])).expect(400);
    expect(inside.body).toMatchObject({ statusCode: 400, field: 'records', message: expect.stringMatching(/4 and 6 leave a gap/) });
    expect(await stored()).toEqual([1, 2, 3]);
    // Following on, in any order within the request, is stored.
    await append(id, records([5, 4])).expect(201);
    expect(await stored()).toEqual([1, 2, 3, 4, 5]);
  });

  it('refuses more than 100 records in one request (400 naming records), storing nothing', async () => {
    const id = uniqueId('batch');
    const records = Array.from({ length: 101 }, (_, i) => ({ version: i + 1, data: '' }));
    const res = await append(id, { records }).expect(400);
    expect(res.body).toMatchObject({ statusCode: 400, field: 'records' });
    expect((await request(http).get(`/aggregates/${id}/events`).expect(200)).body).toEqual({ records: [] });
  });

  it('stores the records (201) and GET answers them ascending, data as base64', async () => {
    const id = uniqueId('order');
    const expiry = now() + 600;
    const res = await append(id, {
      records: [
        { version: 2, data: b64('{"paid":true}'), ttl: expiry },
        { version: 1, data: b64('{"placed":true}') },
      ],
    }).expect(201);
    expect(res.body).toEqual({ saved: 2 });

    const before = now();
    const { body } = await request(http).get(`/aggregates/${id}/events`).expect(200);
    expect(body.records.map((r: { version: number; data: string }) => [r.version, r.data])).toEqual([
      [1, b64('{"placed":true}')],
      [2, b64('{"paid":true}')],
    ]);
    // A record's own ttl wins; one without gets EVENT_TTL_SECONDS from the environment.
    expect(body.records[1].ttl).toBe(expiry);
    expect(body.records[0].ttl).toBeGreaterThanOrEqual(before - 5 + EVENT_TTL_SECONDS);
    expect(body.records[0].ttl).toBeLessThanOrEqual(now() + EVENT_TTL_SECONDS);
  });

  it('stores empty data (the empty base64 string)', async () => {
    const id = uniqueId('empty');
    await append(id, { records: [{ version: 1, data: '' }] }).expect(201);
    const { body } = await request(http).get(`/aggregates/${id}/events`).expect(200);
    expect(body.records).toEqual([expect.objectContaining({ version: 1, data: '' })]);
  });

  it('accepts a body well over express’s default 100 kB limit', async () => {
    const id = uniqueId('big');
    const data = Buffer.alloc(600_000, 7).toString('base64');
    await append(id, { records: [{ version: 1, data }] }).expect(201);
    const { body } = await request(http).get(`/aggregates/${id}/events`).expect(200);
    expect(body.records[0].data).toBe(data);
  });

  it('answers 409 with the existing version when it already exists, and keeps the stream unchanged', async () => {
    const id = uniqueId('conflict');
    await append(id, { records: [{ version: 1, data: b64('first') }] }).expect(201);
    const res = await append(id, { records: [{ version: 1, data: b64('second') }] })
      .expect(409)
      .expect('content-type', /json/);
    expect(res.body).toMatchObject({ statusCode: 409, error: 'Conflict', versions: [1] });
    expect(res.body.message).toMatch(/version 1 already exists/);
    const { body } = await request(http).get(`/aggregates/${id}/events`).expect(200);
    expect(body.records.map((r: { data: string }) => r.data)).toEqual([b64('first')]);
  });

  it.each([
    ['data that is not base64', { records: [{ version: 1, data: 'not base64!' }] }, 'records[0].data'],
    ['base64 without padding', { records: [{ version: 1, data: 'YWI' }] }, 'records[0].data'],
    ['base64url', { records: [{ version: 1, data: '-_8=' }] }, 'records[0].data'],
    ['base64 with non-zero padding bits', { records: [{ version: 1, data: 'YR==' }] }, 'records[0].data'],
    ['data that is not a string', { records: [{ version: 1, data: [1, 2] }] }, 'records[0].data'],
    ['a version that is a string', { records: [{ version: '1', data: '' }] }, 'records[0].version'],
    ['version 0', { records: [{ version: 0, data: '' }] }, 'records[0].version'],
    ['a fractional version', { records: [{ version: 1.5, data: '' }] }, 'records[0].version'],
    ['duplicate versions', { records: [{ version: 1, data: '' }, { version: 1, data: '' }] }, 'records[1].version'],
    ['a negative ttl', { records: [{ version: 1, data: '', ttl: -1 }] }, 'records[0].ttl'],
    ['a ttl that is a string', { records: [{ version: 1, data: '', ttl: '10' }] }, 'records[0].ttl'],
    ['a ttl already past', { records: [{ version: 1, data: '', ttl: now() - 60 }] }, 'records[0].ttl'],
    ['a ttl meant as seconds from now', { records: [{ version: 1, data: '', ttl: 3600 }] }, 'records[0].ttl'],
    ['an unknown record field', { records: [{ version: 1, data: '', tll: 10 }] }, 'records[0].tll'],
    ['records that are not an array', { records: { version: 1 } }, 'records'],
    ['no records field', { events: [] }, 'events'],
    ['a record that is not an object', { records: [1] }, 'records[0]'],
    ['a body that is an array', [{ version: 1, data: '' }], 'body'],
  ])('answers 400 naming the field for %s', async (_what, body, field) => {
    const id = uniqueId('bad');
    const res = await append(id, body).expect(400).expect('content-type', /json/);
    expect(res.body).toMatchObject({ statusCode: 400, error: 'Bad Request', field });
    expect(res.body.message).toContain(field);
    // Nothing was stored.
    expect((await request(http).get(`/aggregates/${id}/events`).expect(200)).body).toEqual({ records: [] });
  });

  it.each([
    ['4 MB', 4_000_000],
    ['6 MB', 6_000_000],
    ['9 MB', 9_000_000],
  ])('answers 400 (not 500) naming the field for %s of data, over the item limit, and logs no stack', async (_what, size) => {
    const id = uniqueId('huge');
    const data = Buffer.alloc(size, 7).toString('base64');
    const res = await append(id, { records: [{ version: 1, data }] }).expect(400);
    expect(res.body).toMatchObject({ statusCode: 400, error: 'Bad Request', field: 'records[0].data' });
    expect(logger.text).not.toMatch(/RangeError|Maximum call stack/);
  });

  it('answers 400 for padding in the middle of the data', async () => {
    const res = await append(uniqueId('pad'), { records: [{ version: 1, data: 'YQ==YQ==' }] }).expect(400);
    expect(res.body).toMatchObject({ field: 'records[0].data' });
  });

  it('answers 400 for an aggregate id longer than a partition key may be', async () => {
    const res = await append('x'.repeat(2049), { records: [{ version: 1, data: '' }] }).expect(400);
    expect(res.body).toMatchObject({ statusCode: 400, field: 'aggregateId' });
  });

  it('answers 400 with a JSON error for malformed JSON, and 415 for a body that is not JSON', async () => {
    const malformed = await request(http)
      .post('/aggregates/a/events')
      .set('content-type', 'application/json')
      .send('{"records": [')
      .expect(400)
      .expect('content-type', /json/);
    expect(malformed.body.statusCode).toBe(400);
    const text = await request(http)
      .post('/aggregates/a/events')
      .set('content-type', 'text/plain')
      .send('records')
      .expect(415)
      .expect('content-type', /json/);
    expect(text.body).toMatchObject({ statusCode: 415, error: 'Unsupported Media Type' });
  });

  it.each([
    ['an order’s stream', 'Order/o-raw', 'Order'],
    ['an order’s stream with an empty id', 'Order/', 'Order'],
    ['a nested id in an order’s stream', 'Order/a/b', 'Order'],
    ['a protosource order’s stream', 'example_app_order_v1#p-raw', 'example.app.order.v1.Order'],
  ])('answers 403 naming the id for %s (a repository’s namespace), and stores nothing', async (_what, id, owner) => {
    const res = await append(id, { records: [{ version: 1, data: b64('{"placed":true}') }] }).expect(403);
    expect(res.body).toMatchObject({ statusCode: 403, error: 'Forbidden', field: 'id' });
    expect(res.body.message).toContain(`belong to the ${owner} aggregate`);
    expect((await request(http).get(`/aggregates/${encodeURIComponent(id)}/events`).expect(200)).body).toEqual({ records: [] });
  });

  it('refuses an order’s stream even for a body that is not valid (403 before 400)', async () => {
    await append('Order/o-raw', { nonsense: true }).expect(403);
  });

  it.each(['Orders/x', 'order/x', 'Order', 'demo/Order/x'])('still takes a stream outside the namespaces: %s', async (prefix) => {
    const id = `${prefix}-${randomUUID()}`;
    await append(id, { records: [{ version: 1, data: '' }] }).expect(201);
  });

  it('answers 201 for zero records and stores nothing', async () => {
    const id = uniqueId('none');
    expect((await append(id, { records: [] }).expect(201)).body).toEqual({ saved: 0 });
    expect((await request(http).get(`/aggregates/${id}/events`).expect(200)).body).toEqual({ records: [] });
  });
});

describe('GET /aggregates/:id/events', () => {
  const id = uniqueId('tail');

  beforeAll(async () => {
    const records = [1, 2, 3, 4, 5].map((version) => ({ version, data: b64(`event ${version}`) }));
    await append(id, { records }).expect(201);
  });

  const versions = (body: { records: Array<{ version: number }> }) => body.records.map((r) => r.version);

  it('answers an unknown aggregate with no records', async () => {
    expect((await request(http).get(`/aggregates/${uniqueId('nobody')}/events`).expect(200)).body).toEqual({ records: [] });
  });

  it('?tail=N answers the newest N records, ascending', async () => {
    const { body } = await request(http).get(`/aggregates/${id}/events?tail=2`).expect(200);
    expect(versions(body)).toEqual([4, 5]);
    expect(body.records[1].data).toBe(b64('event 5'));
  });

  it('?tail=N larger than the stream answers all of it; tail=0 none', async () => {
    expect(versions((await request(http).get(`/aggregates/${id}/events?tail=50`).expect(200)).body)).toEqual([1, 2, 3, 4, 5]);
    expect((await request(http).get(`/aggregates/${id}/events?tail=0`).expect(200)).body).toEqual({ records: [] });
  });

  it.each([
    ['tail=-1', 'tail'],
    ['tail=abc', 'tail'],
    ['tail=1.5', 'tail'],
    ['tail=', 'tail'],
    ['tail=1&tail=2', 'tail'],
    ['last=2', 'last'],
  ])('answers 400 for ?%s', async (query, field) => {
    const res = await request(http).get(`/aggregates/${id}/events?${query}`).expect(400);
    expect(res.body).toMatchObject({ statusCode: 400, field });
  });
});

class Order implements Materializable {
  constructor(
    readonly customer: string,
    readonly orderId: string,
    readonly status: string,
    readonly version: number,
    readonly notes = '',
  ) {}

  keys(): AggregateKeys {
    return { pk: this.customer, sk: this.orderId, gsi: { 1: { pk: `status#${this.status}`, sk: this.orderId } } };
  }

  toJSON() {
    return { customer: this.customer, orderId: this.orderId, status: this.status, notes: this.notes };
  }
}

describe('GET /materialized', () => {
  const customer = uniqueId('customer');
  const status = uniqueId('open');

  beforeAll(async () => {
    await aggregateStore.saveAggregate(new Order(customer, 'order-a', status, 3));
    await aggregateStore.saveAggregate(new Order(customer, 'order-b', status, 1));
    // Over the 300-byte compression threshold: stored gzipped, answered decoded.
    await aggregateStore.saveAggregate(new Order(customer, 'order-c', 'closed', 7, 'n'.repeat(1000)));
    await aggregateStore.saveAggregate(new Order(customer, 'path/with?odd#chars', status, 2));
    await opaqueStore.put({ pk: customer, sk: 'raw-bytes', body: gzipSync(Buffer.from([0xff, 0x00])).subarray(0, 4) });
  });

  describe(':pk/:sk', () => {
    it('answers the materialized document with its body decoded as JSON', async () => {
      const { body } = await request(http).get(`/materialized/${customer}/order-a`).expect(200);
      expect(body).toEqual({
        pk: customer,
        sk: 'order-a',
        version: 3,
        gsi: { 1: { pk: `status#${status}`, sk: 'order-a' } },
        body: { customer, orderId: 'order-a', status, notes: '' },
      });
    });

    it('decodes a gzip-compressed body', async () => {
      const { body } = await request(http).get(`/materialized/${customer}/order-c`).expect(200);
      expect(body.body).toEqual({ customer, orderId: 'order-c', status: 'closed', notes: 'n'.repeat(1000) });
      expect(body.version).toBe(7);
    });

    it('finds a sort key with / ? # in it when URL-encoded', async () => {
      const sk = 'path/with?odd#chars';
      const { body } = await request(http).get(`/materialized/${customer}/${encodeURIComponent(sk)}`).expect(200);
      expect(body).toMatchObject({ sk, body: { orderId: sk } });
    });

    it('answers a body that is not JSON as bodyBase64', async () => {
      const { body } = await request(http).get(`/materialized/${customer}/raw-bytes`).expect(200);
      expect(body.body).toBeUndefined();
      expect(Buffer.from(body.bodyBase64, 'base64')).toEqual(gzipSync(Buffer.from([0xff, 0x00])).subarray(0, 4));
    });

    it('answers 404 with a JSON error when there is no such document', async () => {
      const res = await request(http).get(`/materialized/${customer}/no-such-order`).expect(404).expect('content-type', /json/);
      expect(res.body).toMatchObject({ statusCode: 404, error: 'Not Found' });
    });
  });

  describe('query', () => {
    const sks = (body: { items: Array<{ sk: string }> }) => body.items.map((i) => i.sk);

    it('answers a partition ascending by sort key, bodies decoded', async () => {
      const { body } = await request(http).get('/materialized').query({ pk: customer }).expect(200);
      expect(sks(body)).toEqual(['order-a', 'order-b', 'order-c', 'path/with?odd#chars', 'raw-bytes']);
      expect(body.items[0].body).toEqual({ customer, orderId: 'order-a', status, notes: '' });
      expect(body.continuationToken).toBeUndefined();
    });

    it('applies a sort-key condition', async () => {
      const begins = await request(http).get('/materialized').query({ pk: customer, op: 'begins_with', value: 'order-' }).expect(200);
      expect(sks(begins.body)).toEqual(['order-a', 'order-b', 'order-c']);
      const between = await request(http)
        .get('/materialized')
        .query({ pk: customer, op: 'between', value: 'order-b', value2: 'order-c' })
        .expect(200);
      expect(sks(between.body)).toEqual(['order-b', 'order-c']);
      const gt = await request(http).get('/materialized').query({ index: '0', pk: customer, op: '>', value: 'p' }).expect(200);
      expect(sks(gt.body)).toEqual(['path/with?odd#chars', 'raw-bytes']);
    });

    it('queries a secondary-index slot across partitions', async () => {
      const { body } = await request(http).get('/materialized').query({ index: '1', pk: `status#${status}` }).expect(200);
      expect(sks(body)).toEqual(['order-a', 'order-b', 'path/with?odd#chars']);
    });

    it('pages with limit and continuationToken', async () => {
      const seen: string[] = [];
      let continuationToken: string | undefined;
      let pages = 0;
      do {
        const query: Record<string, string> = { pk: customer, op: 'begins_with', value: 'order-', limit: '2' };
        if (continuationToken) query.continuationToken = continuationToken;
        const { body } = await request(http).get('/materialized').query(query).expect(200);
        expect(body.items.length).toBeLessThanOrEqual(2);
        seen.push(...sks(body));
        continuationToken = body.continuationToken;
        pages++;
      } while (continuationToken && pages < 10);
      expect(seen).toEqual(['order-a', 'order-b', 'order-c']);
      expect(pages).toBeGreaterThan(1);
    });

    it.each([
      [{ pk: 'x', index: '21' }, 'index'],
      [{ pk: 'x', index: 'one' }, 'index'],
      [{ index: '1' }, 'pk'],
      [{ pk: '' }, 'pk'],
      [{ pk: 'x', op: 'like', value: 'a' }, 'op'],
      [{ pk: 'x', op: '=' }, 'value'],
      [{ pk: 'x', value: 'a' }, 'op'],
      [{ pk: 'x', op: 'between', value: 'a' }, 'value2'],
      [{ pk: 'x', op: '=', value: 'a', value2: 'b' }, 'value2'],
      [{ pk: 'x', limit: '0' }, 'limit'],
      [{ pk: 'x', limit: '-1' }, 'limit'],
      [{ pk: 'x', continuationToken: 'not-a-token' }, 'continuationToken'],
      [{ pk: 'x', sort: 'desc' }, 'sort'],
    ])('answers 400 for %j naming %s', async (query, field) => {
      const res = await request(http).get('/materialized').query(query).expect(400).expect('content-type', /json/);
      expect(res.body).toMatchObject({ statusCode: 400, error: 'Bad Request', field });
    });

    it('answers 400 for a repeated parameter', async () => {
      const res = await request(http).get(`/materialized?pk=${customer}&pk=other`).expect(400);
      expect(res.body).toMatchObject({ statusCode: 400, field: 'pk' });
    });
  });
});
