/*
 * Documents reached by body (Go's `PROJ#...` ids) under the proxy's faults: a batch refused or whose answer
 * is lost is planned again from a fresh read, so the call succeeds once and stores one document.
 */
import { randomUUID } from 'node:crypto';
import { CosmosOpaqueStore } from '../../src/index.js';
import type { FaultAction } from '../../src/testing.js';
import { bytes, startFaultyCosmos, type FaultyCosmos } from '../support/faults.js';

let env: FaultyCosmos;
let opaque: CosmosOpaqueStore;
let direct: CosmosOpaqueStore;

beforeAll(async () => {
  env = await startFaultyCosmos();
  opaque = new CosmosOpaqueStore(env.client.database(env.events.database.id).container('aggregates'), { retries: { initialDelayMs: 5, maxDelayMs: 20 } });
  direct = new CosmosOpaqueStore(env.directEvents.database.container('aggregates'));
  const warm = `warm-${randomUUID()}`;
  await opaque.put({ pk: warm, sk: 'PROJ#W', body: bytes('w') });
  await env.proxy.settle();
});
afterEach(() => env.proxy.clearRules());
afterAll(() => env?.close());

const resetAfter: FaultAction = { type: 'reset', when: 'after' };
const status503: FaultAction = { type: 'status', status: 503 };

it.each<[string, FaultAction]>([
  ['a 503', status503],
  ['a lost answer', resetAfter],
])('put of a PROJ# document retries its batch after %s', async (_label, action) => {
  const pk = `p-${randomUUID()}`;
  env.proxy.addRule({ kind: 'batch', times: 1, action });
  await opaque.put({ pk, sk: 'PROJ#S', body: bytes('ours') });
  expect(new TextDecoder().decode((await direct.get(pk, 'PROJ#S')).body)).toBe('ours');
  expect((await direct.query({ pk })).items.length).toBe(1);
});

it('putIfNewer whose batch answer is lost finds its own version stored and resolves true', async () => {
  const pk = `p-${randomUUID()}`;
  env.proxy.addRule({ kind: 'batch', times: 1, action: resetAfter });
  expect(await opaque.putIfNewer({ pk, sk: 'PROJ#S', version: 3, body: bytes('ours') })).toBe(true);
  expect((await direct.get(pk, 'PROJ#S')).version).toBe(3);
});

it('delete retries its batch after a 503', async () => {
  const pk = `p-${randomUUID()}`;
  await direct.put({ pk, sk: 'PROJ#S', body: bytes('x') });
  env.proxy.addRule({ kind: 'batch', times: 1, action: status503 });
  await opaque.delete(pk, 'PROJ#S');
  expect((await direct.query({ pk })).items).toEqual([]);
});
