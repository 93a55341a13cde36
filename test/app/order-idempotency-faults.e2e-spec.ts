/*
 * The guarantee of Idempotency-Key over HTTP under a fault (issue 16): the service on a Cosmos DB account behind the
 * fault proxy loses every acknowledgement of an order's batches, so the command answers 503 "retry with the same
 * Idempotency-Key"; the retry with the key is stored once and answered as the first outcome.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, expect, it } from '@jest/globals';
import request from 'supertest';
import { startEmbeddedCosmos, startFaultProxy, type EmbeddedCosmos, type FaultProxy } from '../../src/testing.js';
import { CapturingLogger, startService, type ServiceUnderTest } from '../support/app.js';

const logger = new CapturingLogger();
let cosmos: EmbeddedCosmos;
let proxy: FaultProxy;
let service: ServiceUnderTest;
let http: ServiceUnderTest['http'];

beforeAll(async () => {
  cosmos = await startEmbeddedCosmos();
  proxy = await startFaultProxy({ target: cosmos.endpoint, seed: 16 });
  service = await startService(
    {
      COSMOS_ENDPOINT: proxy.endpoint,
      COSMOS_KEY: cosmos.key,
      COSMOS_DATABASE: `idempotency-faults-${randomUUID()}`,
      SUBSCRIPTIONS_INSTANCE_ID: 'idempotency-faults',
    },
    logger,
  );
  http = service.http;
}, 30_000);
afterEach(() => proxy.clearRules());
afterAll(async () => {
  await service?.close();
  await proxy?.close();
  await cosmos?.close();
});

const loseAcknowledgements = (id: string) =>
  proxy.addRule({ kind: 'batch', match: (r) => r.partitionKey === `Order/${id}`, action: { type: 'reset', when: 'after' } });

async function versions(id: string): Promise<number[]> {
  const { body } = await request(http).get(`/orders/${id}/history`).expect(200);
  return (body.events as Array<{ version: number }>).map((e) => e.version);
}

it('a command whose acknowledgement is lost, retried with the same key, is stored once and answered as the first', async () => {
  const id = (await request(http).post('/orders').send({ customerId: `c-${randomUUID()}` }).expect(201)).body.id as string;
  const rule = loseAcknowledgements(id);
  const key = randomUUID();
  const line = { sku: 'tea', quantity: 2, unitPrice: 3 };
  const lost = await request(http).post(`/orders/${id}/lines`).set('Idempotency-Key', key).send(line);
  proxy.clearRules();
  expect(rule.fired).toBeGreaterThan(0);
  expect(lost.status).toBe(503);
  expect(lost.body.message).toMatch(/retry with the same Idempotency-Key/);
  // The retry finds the key in the tip the lost batch wrote: the first outcome, nothing applied twice.
  const retried = await request(http).post(`/orders/${id}/lines`).set('Idempotency-Key', key).send(line).expect(200);
  expect(retried.body).toEqual({ version: 2 });
  expect(await versions(id)).toEqual([1, 2]);
  const order = (await request(http).get(`/orders/${id}`).expect(200)).body as { lines: Array<{ quantity: number }> };
  expect(order.lines.map((l) => l.quantity)).toEqual([2]);
  // And again: still the first outcome.
  await request(http).post(`/orders/${id}/lines`).set('Idempotency-Key', key).send(line).expect(200, { version: 2 });
}, 30_000);

it('a keyed create whose acknowledgement is lost answers 201 with the same order on its retry', async () => {
  const key = randomUUID();
  const customerId = `c-${randomUUID()}`;
  // The id is derived from the key, so the rule can name its partition before the first attempt.
  proxy.addRule({ kind: 'batch', match: (r) => r.partitionKey?.startsWith('Order/') === true, action: { type: 'reset', when: 'after' } });
  const lost = await request(http).post('/orders').set('Idempotency-Key', key).send({ customerId });
  proxy.clearRules();
  expect(lost.status).toBe(503);
  expect(lost.body.message).toMatch(/retry with the same Idempotency-Key/);
  const retried = await request(http).post('/orders').set('Idempotency-Key', key).send({ customerId }).expect(201);
  expect(retried.body.version).toBe(1);
  expect(await versions(retried.body.id as string)).toEqual([1]);
}, 30_000);

it('a client that timed out retries with the same key: the command in flight is stored once, both answered as the first', async () => {
  const id = (await request(http).post('/orders').send({ customerId: `c-${randomUUID()}` }).expect(201)).body.id as string;
  // The batch is slow: the client gives up before the service answers, while the command goes on.
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const rule = proxy.addRule({ kind: 'batch', times: 1, match: (r) => r.partitionKey === `Order/${id}`, action: { type: 'latency', until: held } });
  const key = randomUUID();
  const line = { sku: 'tea', quantity: 1, unitPrice: 2 };
  const timedOut = await request(http).post(`/orders/${id}/lines`).set('Idempotency-Key', key).send(line).timeout(300).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect((timedOut as { timeout?: number } | undefined)?.timeout).toBe(300);
  // The retry queues behind the command in flight (commands on one order run one at a time), then finds its key.
  const retry = request(http).post(`/orders/${id}/lines`).set('Idempotency-Key', key).send(line);
  const answered = retry.then((res) => res);
  release();
  const res = await answered;
  expect(rule.fired).toBe(1);
  expect([res.status, res.body]).toEqual([200, { version: 2 }]);
  expect(await versions(id)).toEqual([1, 2]);
}, 30_000);

it('without a key, the lost acknowledgement keeps the reload-first answer', async () => {
  const id = (await request(http).post('/orders').send({ customerId: `c-${randomUUID()}` }).expect(201)).body.id as string;
  loseAcknowledgements(id);
  const lost = await request(http).post(`/orders/${id}/submit`);
  proxy.clearRules();
  // submit of an empty order is refused before any write; add a line instead.
  expect(lost.status).toBe(422);
  loseAcknowledgements(id);
  const res = await request(http).post(`/orders/${id}/lines`).send({ sku: 'tea', quantity: 1, unitPrice: 1 });
  proxy.clearRules();
  expect(res.status).toBe(503);
  expect(res.body.message).toMatch(/reload the aggregate/);
}, 30_000);
