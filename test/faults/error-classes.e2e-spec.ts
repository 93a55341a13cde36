/*
 * Which failures the store retries, and what a save that surely did not land reports: a programming error
 * with a string code is not a network fault, and a connection that never reached the service sent nothing.
 */
import { randomUUID } from 'node:crypto';
import { PluginOn, type PluginConfig } from '@azure/cosmos';
import {
  CosmosEventStore,
  EventStoreError,
  isOutcomeUnknown,
  WriteOutcomeUnknownError,
} from '../../src/index.js';
import { bytes, startFaultyCosmos, type FaultyCosmos } from '../support/faults.js';

const retries = { initialDelayMs: 5, maxDelayMs: 20 };

describe('failures that are not network faults', () => {
  let env: FaultyCosmos;
  let failing = false;
  let thrown = 0;
  // Throws a Node-style programming error (a string `code` starting ERR_) in place of each query request.
  const plugin: PluginConfig = {
    on: PluginOn.request,
    plugin: async (context, _diagnostics, next) => {
      if (failing && context.operationType === 'query') {
        thrown++;
        throw Object.assign(new TypeError('The "chunk" argument must be of type string'), { code: 'ERR_INVALID_ARG_TYPE' });
      }
      return next(context);
    },
  };
  beforeAll(async () => {
    env = await startFaultyCosmos({ plugins: [plugin] });
  });
  afterAll(() => env?.close());

  it('does not retry an ERR_* programming error', async () => {
    const store = new CosmosEventStore(env.events, { retries });
    failing = true;
    try {
      const err = await store.load(`err-${randomUUID()}`).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EventStoreError);
      expect(thrown).toBe(1);
    } finally {
      failing = false;
    }
  });
});

describe('a save whose requests never reached the service', () => {
  let env: FaultyCosmos;
  beforeAll(async () => {
    env = await startFaultyCosmos();
  });
  // The proxy is closed already: close the rest.
  afterAll(() => env?.close().catch(() => env.cosmos.close()));

  it('retries a refused connection and, once the retries run out, fails with a plain EventStoreError', async () => {
    const id = `refused-${randomUUID()}`;
    const store = new CosmosEventStore(env.events, { retries: { ...retries, maxAttempts: 3 } });
    // The proxy stops listening: every connection to it is refused.
    await env.proxy.close();
    // ... once the client has seen its kept-alive connection closed (a request on it would be a reset).
    await new Promise((resolve) => setTimeout(resolve, 100));
    const err = await store.save(id, [{ version: 1, data: bytes('one') }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EventStoreError);
    expect(err).not.toBeInstanceOf(WriteOutcomeUnknownError);
    expect(isOutcomeUnknown(err)).toBe(false);
    expect(String((err as Error).message)).toMatch(/ECONNREFUSED/);
    const { resources } = await env.directEvents.items
      .query({ query: 'SELECT * FROM c WHERE c.a = @a', parameters: [{ name: '@a', value: id }] })
      .fetchAll();
    expect(resources).toEqual([]);
  });
});
