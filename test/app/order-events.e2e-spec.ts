/*
 * GET /events (issue 16 part 6 in the example): the orders' events across orders by type and commit time over
 * the store's readAll, paged by position, with the metadata; input refused with 400 naming the parameter.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import request from 'supertest';
import { DEFAULT_READ_ALL_SETTLE_SECONDS } from '../../src/index.js';
import { CapturingLogger, startService, type ServiceUnderTest } from '../support/app.js';

interface Item {
  aggregateId: string;
  version: number;
  type?: string;
  committedAt: string;
  actor?: string;
  eventId?: string;
  correlationId?: string;
  causationId?: string;
  position: string;
}

const logger = new CapturingLogger();
let service: ServiceUnderTest;
let http: ServiceUnderTest['http'];

beforeAll(async () => {
  service = await startService({ COSMOS_DATABASE: `events-${randomUUID()}` }, logger);
  http = service.http;
});

afterAll(() => service?.close());

/** Past the store's readAll settle window, so that what was just written is listed. */
const settled = () => new Promise((resolve) => setTimeout(resolve, (DEFAULT_READ_ALL_SETTLE_SECONDS + 1) * 1000));

/** Every page of `GET /events` with the query, following `after`. */
async function all(query: Record<string, string | number>): Promise<{ items: Item[]; pages: number }> {
  const items: Item[] = [];
  let after: string | undefined;
  let pages = 0;
  do {
    const { body } = await request(http)
      .get('/events')
      .query({ ...query, ...(after && { after }) })
      .expect(200);
    pages++;
    items.push(...(body.items as Item[]));
    after = body.after as string | undefined;
    if (pages > 100) throw new Error('GET /events does not end');
  } while (after);
  return { items, pages };
}

it('lists events of a type since a time, oldest first, with their metadata, a page at a time', async () => {
  const since = new Date(Date.now() - 1000).toISOString();
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const id = (await request(http).post('/orders').set('x-actor', 'alice').set('x-correlation-id', `corr-${i}`).send({ customerId: 'c' }).expect(201)).body.id as string;
    await request(http).post(`/orders/${id}/lines`).send({ sku: 'tea', quantity: 1, unitPrice: 1 }).expect(200);
    ids.push(id);
  }
  // readAll hands out a second only once it is over (readAllSettleSeconds): wait for it.
  await settled();
  const { items, pages } = await all({ type: 'OrderPlaced', since, limit: 2 });
  const ours = items.filter((item) => ids.includes(item.aggregateId));
  expect(ours.map((item) => item.aggregateId).sort()).toEqual([...ids].sort());
  expect(pages).toBeGreaterThanOrEqual(2);
  expect(items.every((item) => item.type === 'OrderPlaced' && item.version === 1)).toBe(true);
  for (const item of ours) {
    expect(item).toMatchObject({ actor: 'alice', eventId: expect.any(String), correlationId: expect.stringMatching(/^corr-\d$/) });
    expect(Date.parse(item.committedAt)).toBeGreaterThanOrEqual(Date.parse(since) - 1000);
  }
  // Commit-time order, each item once.
  const times = items.map((item) => Date.parse(item.committedAt));
  expect(times).toEqual([...times].sort((a, b) => a - b));
  expect(new Set(items.map((item) => item.position)).size).toBe(items.length);
  // Another type lists the lines; a time after them lists none of them.
  const lines = (await all({ type: 'LineAdded', since })).items.filter((item) => ids.includes(item.aggregateId));
  expect(lines.map((item) => item.version)).toEqual([2, 2, 2]);
  const later = new Date(Date.now() + 60_000).toISOString();
  expect((await all({ type: 'OrderPlaced', since: later })).items).toEqual([]);
});

it('lists every order event without a type; an erased order only as its $stream-deleted item', async () => {
  const since = new Date(Date.now() - 1000).toISOString();
  const id = (await request(http).post('/orders').send({ customerId: 'c' }).expect(201)).body.id as string;
  const kept = (await request(http).post('/orders').send({ customerId: 'c' }).expect(201)).body.id as string;
  await request(http).post(`/orders/${kept}/lines`).send({ sku: 'tea', quantity: 1, unitPrice: 1 }).expect(200);
  await request(http).delete(`/admin/orders/${id}`).expect(200);
  // readAll hands out a second only once it is over (readAllSettleSeconds): wait for it.
  await settled();
  const items = (await all({ since })).items;
  expect(items.filter((item) => item.aggregateId === kept).map((item) => [item.version, item.type])).toEqual([
    [1, 'OrderPlaced'],
    [2, 'LineAdded'],
  ]);
  // The erased order's events are gone from the store, so from the list: only the tombstone tells it existed.
  expect(items.filter((item) => item.aggregateId === id).map((item) => [item.version, item.type, item.eventId])).toEqual([[2, '$stream-deleted', undefined]]);
  const erasures = (await all({ type: '$stream-deleted', since })).items.filter((item) => item.aggregateId === id);
  expect(erasures).toHaveLength(1);
});

it('refuses malformed input with 400 naming the parameter', async () => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ type: 'Nope' }, 'type'],
    [{ since: 'yesterday' }, 'since'],
    [{ since: '2026-13-45T00:00:00Z' }, 'since'],
    [{ since: '2026-01-01T00:00:00' }, 'since'],
    [{ limit: '0' }, 'limit'],
    [{ limit: '1001' }, 'limit'],
    [{ after: 'not-a-position' }, 'after'],
    [{ sort: 'x' }, 'sort'],
  ];
  for (const [query, field] of cases) {
    const res = await request(http).get('/events').query(query);
    expect([res.status, res.body.field]).toEqual([400, field]);
  }
});
