/*
 * CosmosModule's retryOptions reach the client's throttling policy: counted as requests at the proxy,
 * which answers every batch with 429.
 */
import { Test } from '@nestjs/testing';
import type { Container } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import {
  CosmosModule,
  DEFAULT_COSMOS_RETRY_OPTIONS,
  EVENTS_CONTAINER,
  type CosmosModuleOptions,
} from '../../src/index.js';
import {
  startEmbeddedCosmos,
  startFaultProxy,
  type EmbeddedCosmos,
  type FaultProxy,
} from '../../src/testing.js';

let cosmos: EmbeddedCosmos;
let proxy: FaultProxy;

beforeAll(async () => {
  cosmos = await startEmbeddedCosmos();
  proxy = await startFaultProxy({ target: cosmos.endpoint });
});
afterAll(async () => {
  await proxy?.close();
  await cosmos?.close();
});

/** How many batch requests one throttled batch call sends through a CosmosModule built with `overrides`. */
async function throttledAttempts(overrides: Partial<CosmosModuleOptions>): Promise<number> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      CosmosModule.forRoot({
        endpoint: proxy.endpoint,
        key: cosmos.key,
        databaseId: `retry-${randomUUID()}`,
        ...overrides,
        clientOptions: {
          ...overrides.clientOptions,
          connectionPolicy: { enableBackgroundEndpointRefreshing: false, ...overrides.clientOptions?.connectionPolicy },
        },
      }),
    ],
  }).compile();
  const app = await moduleRef.createNestApplication({ logger: false }).init();
  try {
    const events = app.get<Container>(EVENTS_CONTAINER);
    proxy.clearRecords();
    const rule = proxy.addRule({ kind: 'batch', action: { type: 'status', status: 429, retryAfterMs: 1 } });
    const err = await events.items.batch([{ operationType: 'Create', resourceBody: { id: '1', a: 'x' } }], 'x').catch((e: unknown) => e);
    rule.remove();
    expect(err).toBeInstanceOf(Error);
    return proxy.count({ kind: 'batch', status: 429 });
  } finally {
    await app.close();
  }
}

describe('CosmosModule retryOptions', () => {
  it('defaults to the documented throttling retries: 9 after the first attempt, honouring the retry-after', async () => {
    expect(DEFAULT_COSMOS_RETRY_OPTIONS).toEqual({ maxRetryAttemptCount: 9, fixedRetryIntervalInMilliseconds: 0, maxWaitTimeInSeconds: 30 });
    expect(await throttledAttempts({})).toBe(10);
  });

  it('sets the client retry policy from retryOptions', async () => {
    expect(await throttledAttempts({ retryOptions: { maxRetryAttemptCount: 2 } })).toBe(3);
    expect(await throttledAttempts({ retryOptions: { maxRetryAttemptCount: 0 } })).toBe(1);
  });

  it('keeps clientOptions working, retryOptions taking precedence field by field', async () => {
    const clientOptions = { connectionPolicy: { retryOptions: { maxRetryAttemptCount: 1 } } };
    expect(await throttledAttempts({ clientOptions })).toBe(2);
    expect(await throttledAttempts({ clientOptions, retryOptions: { maxRetryAttemptCount: 3 } })).toBe(4);
  });

  it('refuses malformed retry options, naming the field', () => {
    const build = (retryOptions: unknown) =>
      Test.createTestingModule({
        imports: [CosmosModule.forRoot({ endpoint: proxy.endpoint, key: cosmos.key, databaseId: 'x', retryOptions: retryOptions as never })],
      }).compile();
    return Promise.all([
      expect(build({ maxRetryAttemptCount: -1 })).rejects.toThrow('retryOptions.maxRetryAttemptCount'),
      expect(build({ maxWaitTimeInSeconds: 1.5 })).rejects.toThrow('retryOptions.maxWaitTimeInSeconds'),
      expect(build({ retries: 3 })).rejects.toThrow('retryOptions.retries'),
    ]);
  });
});
