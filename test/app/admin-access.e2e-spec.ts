/*
 * The /admin endpoints behind ADMIN_TOKEN: the service on its embedded server with a token set answers 401
 * without it or with another, and runs the action with it. The token never reaches the log.
 */
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { CapturingLogger, startService, type ServiceUnderTest } from '../support/app.js';

const TOKEN = `test-admin-token-${randomUUID()}`;
const REBUILD = '/admin/projections/order-stats/rebuild';
const logger = new CapturingLogger();
let service: ServiceUnderTest;

beforeAll(async () => {
  service = await startService({ COSMOS_DATABASE: `admin-${randomUUID()}`, ADMIN_TOKEN: TOKEN }, logger);
});

afterAll(() => service?.close());

it.each([
  ['no Authorization header', undefined],
  ['another token', `Bearer ${TOKEN}x`],
  ['the token under another scheme', `Basic ${TOKEN}`],
  ['a prefix of the token', `Bearer ${TOKEN.slice(0, -1)}`],
])('answers 401 with WWW-Authenticate to %s, and rebuilds nothing', async (_what, authorization) => {
  const call = request(service.http).post(REBUILD);
  if (authorization !== undefined) call.set('authorization', authorization);
  const res = await call.expect(401).expect('www-authenticate', 'Bearer');
  expect(res.body).toMatchObject({ statusCode: 401, message: expect.stringMatching(/Bearer <ADMIN_TOKEN>/) });
  expect(logger.text).not.toMatch(/order-stats: rebuilding/);
});

it('runs the action for the token', async () => {
  const res = await request(service.http).post(REBUILD).set('authorization', `Bearer ${TOKEN}`).expect(202);
  expect(res.body).toMatchObject({ rebuilding: 'order-stats' });
  expect(logger.text).toMatch(/order-stats: rebuilding from beginning/);
});

it('runs one rebuild at a time: five concurrent requests answer 202 once and 409 otherwise, never 500', async () => {
  const answers = await Promise.all(
    Array.from({ length: 5 }, () => request(service.http).post(REBUILD).set('authorization', `Bearer ${TOKEN}`)),
  );
  // The five arrive together, well within the first rebuild's time: it runs, the others are refused.
  expect(answers.map((res) => res.status).sort()).toEqual([202, 409, 409, 409, 409]);
  for (const res of answers.filter((r) => r.status === 409)) {
    expect(res.body).toMatchObject({ statusCode: 409, rebuilding: { subscriber: 'order-stats' } });
  }
});

it('guards the raw event API’s writes as /admin: 401 without the token, 201 with it; reads stay open', async () => {
  const id = `raw-${randomUUID()}`;
  const body = { records: [{ version: 1, data: '' }] };
  await request(service.http).post(`/aggregates/${id}/events`).send(body).expect(401).expect('www-authenticate', 'Bearer');
  expect((await request(service.http).get(`/aggregates/${id}/events`).expect(200)).body).toEqual({ records: [] });
  await request(service.http).post(`/aggregates/${id}/events`).set('authorization', `Bearer ${TOKEN}`).send(body).expect(201);
});

it('refuses an order’s stream (403) to the raw API even with the token', async () => {
  const res = await request(service.http)
    .post(`/aggregates/${encodeURIComponent(`Order/${randomUUID()}`)}/events`)
    .set('authorization', `Bearer ${TOKEN}`)
    .send({ records: [{ version: 1, data: '' }] })
    .expect(403);
  expect(res.body).toMatchObject({ field: 'id' });
});

it('guards only the admin actions: the rest of the service needs no token', async () => {
  await request(service.http).get('/order-stats').expect(200);
  await request(service.http).post('/orders').send({ customerId: 'c-1' }).expect(201);
});

it('never logs the token', () => {
  expect(logger.text).not.toContain(TOKEN);
});
