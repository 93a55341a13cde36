import type { Container, FeedOptions, QueryIterator, SqlQuerySpec } from '@azure/cosmos';
import { EventStoreError } from './event-store.errors.js';

/**
 * A query of one logical partition that sends one request per page and nothing else.
 *
 * @azure/cosmos 4.9 sends a query-plan request beside the first page of every item query, whatever its
 * options (no `FeedOptions` field turns it off; `forceQueryPlan` only makes it wait for the plan). The plan is
 * used only when the gateway refuses the query as one it cannot run alone (a cross-partition ORDER BY, an
 * aggregate across partitions); a query with a partition key is run by the one partition that holds it,
 * ORDER BY included, and is never refused so. The iterator takes the plan from a promise it fetches only when
 * it has none: here it is given one already settled, so no plan request leaves. Should the gateway ever
 * ask for a plan, the query fails with this store's error instead of running without one.
 *
 * This reaches into the iterator's `queryPlanPromise`, which is not public API. An SDK version without it is
 * detected, and its iterator is left as it is (two requests, as before): the request-count tests
 * (test/faults/store-requests.e2e-spec.ts) fail on such a version, so an upgrade that breaks this is seen.
 */
export function singlePartitionQuery<T>(container: Container, spec: SqlQuerySpec, options: FeedOptions & { partitionKey: string }): QueryIterator<T> {
  const iterator = container.items.query<T>(spec, options);
  const internals = iterator as unknown as { queryPlanPromise?: unknown };
  if ('queryPlanPromise' in internals && internals.queryPlanPromise === undefined) {
    internals.queryPlanPromise = Promise.resolve(
      new EventStoreError('Cosmos DB asked for a query plan for a single-partition query, which this store does not fetch'),
    );
  }
  return iterator;
}

/**
 * Every result of a single-partition query, one request per page. (`fetchAll` would not do: it resets the
 * iterator first, dropping the settled plan, and sends the query-plan request after all.)
 */
export async function fetchAllOfPartition<T>(container: Container, spec: SqlQuerySpec, options: FeedOptions & { partitionKey: string }): Promise<T[]> {
  const iterator = singlePartitionQuery<T>(container, spec, options);
  const found: T[] = [];
  while (iterator.hasMoreResults()) found.push(...(await iterator.fetchNext()).resources);
  return found;
}
