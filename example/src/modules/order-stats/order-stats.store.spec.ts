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
  afterEach(() => jest.useRealTimers());

  it('keeps retrying a conflict (someone else progressed) rather than giving up after a few attempts', async () => {
    jest.useFakeTimers();
    const { store, batches } = contended(60);
    let result: string | undefined;
    let failure: unknown;
    void store.apply(placed).then((r) => (result = r), (err: unknown) => (failure = err));
    while (result === undefined && failure === undefined) await jest.advanceTimersByTimeAsync(1_000);
    expect(failure).toBeUndefined();
    expect(result).toBe('applied');
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
