/*
 * The orders service over HTTP (the real AppModule on its embedded server): a request's correlation id
 * (`x-correlation-id`, else the `traceparent` trace id, else a fresh one) is stored with its events and
 * answered back; `/orders/:id/history` shows eventId, correlationId and causationId; prices stay in
 * currency units on the wire although they are stored in cents.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { CapturingLogger, startService, type ServiceUnderTest } from '../support/app.js';

interface HistoryBody {
  events: Array<{ type: string; version: number; eventId?: string; correlationId?: string; causationId?: string } & Record<string, unknown>>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';

let service: ServiceUnderTest;
let http: ServiceUnderTest['http'];

beforeAll(async () => {
  service = await startService({ COSMOS_DATABASE: `story-${randomUUID()}` }, new CapturingLogger());
  http = service.http;
});

afterAll(() => service?.close());

const history = async (id: string) => ((await request(http).get(`/orders/${id}/history`).expect(200)).body as HistoryBody).events;

describe('correlation ids over HTTP', () => {
  it('stores a valid x-correlation-id with the events of the request, and answers it back', async () => {
    const id = `o-${randomUUID()}`;
    const placed = await request(http).post('/orders').set('x-correlation-id', 'checkout-7f3').send({ customerId: 'c-1', orderId: id }).expect(201);
    expect(placed.headers['x-correlation-id']).toBe('checkout-7f3');
    const [event] = await history(id);
    expect(event).toMatchObject({ type: 'OrderPlaced', version: 1, correlationId: 'checkout-7f3', causationId: 'checkout-7f3' });
    expect(event.eventId).toMatch(UUID);
  });

  it('takes the W3C traceparent trace id when there is no x-correlation-id', async () => {
    const id = `o-${randomUUID()}`;
    await request(http).post('/orders').send({ customerId: 'c-1', orderId: id }).expect(201);
    const added = await request(http)
      .post(`/orders/${id}/lines`)
      .set('traceparent', `00-${TRACE_ID}-b7ad6b7169203331-01`)
      .send({ sku: 'book', quantity: 2, unitPrice: 12.5 })
      .expect(200);
    expect(added.headers['x-correlation-id']).toBe(TRACE_ID);
    const events = await history(id);
    expect(events[1]).toMatchObject({ type: 'LineAdded', sku: 'book', quantity: 2, unitPrice: 12.5, correlationId: TRACE_ID });
    // Two requests, two stories, two event ids.
    expect(events[0].correlationId).not.toBe(TRACE_ID);
    expect(events[0].eventId).not.toBe(events[1].eventId);
  });

  it('passes an invalid header over for a fresh id (never stored as sent)', async () => {
    const id = `o-${randomUUID()}`;
    const placed = await request(http).post('/orders').set('x-correlation-id', 'x'.repeat(129)).send({ customerId: 'c-1', orderId: id }).expect(201);
    const fresh = placed.headers['x-correlation-id'] as string;
    expect(fresh).toMatch(UUID);
    expect((await history(id))[0].correlationId).toBe(fresh);
  });
});

describe('prices in cents, the API in currency units', () => {
  it('answers lines and totals as before, and refuses a fraction of a cent', async () => {
    const id = `o-${randomUUID()}`;
    await request(http).post('/orders').send({ customerId: 'c-1', orderId: id }).expect(201);
    await request(http).post(`/orders/${id}/lines`).send({ sku: 'book', quantity: 2, unitPrice: 12.5 }).expect(200);
    await request(http).post(`/orders/${id}/lines`).send({ sku: 'pen', quantity: 3, unitPrice: 0.1 }).expect(200);
    const order = (await request(http).get(`/orders/${id}`).expect(200)).body as { lines: unknown[]; total: string };
    expect(order.lines).toEqual([
      { sku: 'book', quantity: 2, unitPrice: 12.5 },
      { sku: 'pen', quantity: 3, unitPrice: 0.1 },
    ]);
    expect(order.total).toBe('25.30');
    const refused = await request(http).post(`/orders/${id}/lines`).send({ sku: 'gum', quantity: 1, unitPrice: 0.015 }).expect(422);
    expect(JSON.stringify(refused.body)).toMatch(/whole number of cents/);
  });
});
