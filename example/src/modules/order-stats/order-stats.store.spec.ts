import { jest } from '@jest/globals';
import type { Container } from '@azure/cosmos';
import { ORDER_EVENT_TYPES, OrderStatsStore } from './order-stats.store.js';

/** A container where every read finds nothing and the first `conflicts` batches fail with 412. */
function contended(conflicts: number) {
  let batches = 0;
  const container = {
    item: () => ({ read: () => Promise.resolve({ resource: undefined }) }),
    items: {
      batch: (operations: unknown[]) => {
        batches++;
        const statusCode = batches <= conflicts ? 412 : 201;
        return Promise.resolve({ result: operations.map(() => ({ statusCode })) });
      },
    },
  } as unknown as Container;
  return { store: new OrderStatsStore(container), batches: () => batches };
}

const placed = { type: ORDER_EVENT_TYPES.placed, aggregateId: 'Order/1', version: 1, payload: { customerId: 'c-1' } };

describe('OrderStatsStore.apply under contention', () => {
  afterEach(() => jest.restoreAllMocks());

  it('keeps retrying a conflict (someone else progressed) rather than giving up after a few attempts', async () => {
    // The pauses between attempts are random up to a second: drawn as 0 here, so 60 conflicts take no time.
    // (Fake timers do not reach node:timers/promises: the test took about 30 s of real pauses, and once it ran
    // past its timeout its loop of timer advances went on for ever with the real timers back, starving the run.)
    jest.spyOn(Math, 'random').mockReturnValue(0);
    const { store, batches } = contended(60);
    await expect(store.apply(placed)).resolves.toBe('applied');
    expect(batches()).toBe(61);
  });

  it('stops retrying once the reader is asked to stop, so the event is delivered again rather than skipped', async () => {
    const { store, batches } = contended(Number.POSITIVE_INFINITY);
    const stop = new AbortController();
    const applying = store.apply(placed, stop.signal);
    await new Promise((resolve) => setTimeout(resolve, 50));
    stop.abort();
    await expect(applying).rejects.toThrow();
    const after = batches();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(batches()).toBe(after);
  });
});

describe('OrderStatsStore.customer', () => {
  it('answers one customer with one point read, whatever the number of customers', async () => {
    const reads: Array<[string, string]> = [];
    const row = { customerId: 'c-1', orders: 2, statuses: { open: 1, submitted: 1, shipped: 0, cancelled: 0 }, revenueCents: '100000000000000010' };
    const container = {
      item: (id: string, pk: string) => {
        reads.push([id, pk]);
        return { read: () => Promise.resolve({ resource: { body: Buffer.from(JSON.stringify(row)).toString('base64'), _etag: '"1"' } }) };
      },
      items: {
        query: () => {
          throw new Error('a customer is read without a query');
        },
      },
    } as unknown as Container;
    const view = await new OrderStatsStore(container).customer('c-1');
    expect(reads).toEqual([['customer%2Fc-1', 'projection/order-stats']]);
    expect(view).toEqual({ customerId: 'c-1', orders: 2, byStatus: row.statuses, revenue: '1000000000000000.10' });
  });
});

describe('OrderStatsStore.customers', () => {
  it('answers a continuation token Cosmos DB cannot read (400) as the client\'s input, naming it', async () => {
    const container = {
      items: {
        query: () => ({ fetchNext: () => Promise.reject(Object.assign(new Error('Invalid continuation token'), { code: 400 })) }),
      },
    } as unknown as Container;
    const store = new OrderStatsStore(container);
    await expect(store.customers({ limit: 10, continuationToken: 'garbage' })).rejects.toMatchObject({ name: 'ValidationError', field: 'continuationToken' });
    // Without a token of the client's, a 400 is the service's own failure.
    await expect(store.customers({ limit: 10 })).rejects.toThrow('Invalid continuation token');
  });
});
