import type { Container } from '@azure/cosmos';
import { singlePartitionQuery } from './single-partition-query.js';

/** A container whose `items.query` answers `iterator`, as an SDK of another shape would. */
const containerAnswering = (iterator: object) => ({ items: { query: () => iterator } }) as unknown as Container;

describe('singlePartitionQuery', () => {
  it('settles the plan of an iterator that has the field, unset', async () => {
    const iterator = { queryPlanPromise: undefined as unknown };
    singlePartitionQuery(containerAnswering(iterator), { query: 'SELECT 1' }, { partitionKey: 'a' });
    // Settled to an error: should the gateway ever ask for a plan, the query fails loudly.
    expect(await iterator.queryPlanPromise).toBeInstanceOf(Error);
  });

  it('leaves an iterator of another SDK shape as it is (no field, or a plan already under way)', () => {
    const without = { fetchNext: () => undefined };
    expect(singlePartitionQuery(containerAnswering(without), { query: 'SELECT 1' }, { partitionKey: 'a' })).toEqual(without);
    const pending = Promise.resolve('plan');
    const withPlan = { queryPlanPromise: pending };
    singlePartitionQuery(containerAnswering(withPlan), { query: 'SELECT 1' }, { partitionKey: 'a' });
    expect(withPlan.queryPlanPromise).toBe(pending);
  });
});
