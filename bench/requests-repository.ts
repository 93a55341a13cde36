/**
 * The repository's operations for `bench/requests.bench.ts`: `get`, `apply` (creating, on an existing
 * aggregate through the tip cache, and from a cold process), and a burst on one aggregate.
 */
import { randomUUID } from 'node:crypto';
import { Aggregate, AggregateRoot, Command, CosmosEventStore, CosmosOpaqueStore, On, AggregateRepository } from '../src/index.js';
import type { CaseGroup, RequestCase } from './requests.bench.js';

class Added {
  constructor(readonly n: number) {}
}

@Aggregate({ type: 'Tally' })
class Tally extends AggregateRoot {
  total = 0;

  @On(Added)
  onAdded(event: Added): void {
    this.total += event.n;
  }
}

class Add extends Command<Tally> {
  constructor(
    readonly aggregateId: string,
    readonly lifecycle: 'create' | 'mutate' = 'mutate',
  ) {
    super();
  }
  emit(): Added {
    return new Added(1);
  }
}

export const repositoryCases: CaseGroup = async ({ database }) => {
  const events = database.container('events');
  const aggregates = new CosmosOpaqueStore(database.container('aggregates'));
  const store = new CosmosEventStore(events, { opaqueStore: aggregates });
  const stores = { events: store, aggregates: store, opaque: aggregates };
  const warm = new AggregateRepository(Tally, stores);
  const id = `t-${randomUUID()}`;
  await warm.apply(new Add(id, 'create'));
  await warm.apply(new Add(id));
  return [
    // The tip in the cache: If-None-Match answered 304.
    { label: 'AggregateRepository.get, tip cached', minimum: 1, minimumIs: 'read', run: () => warm.get(id) },
    { label: 'AggregateRepository.get, new process', minimum: 1, minimumIs: 'read', run: () => new AggregateRepository(Tally, stores).get(id) },
    {
      label: 'AggregateRepository.apply, new aggregate',
      minimum: 3,
      minimumIs: 'read + batch + view write',
      run: () => warm.apply(new Add(`t-${randomUUID()}`, 'create')),
    },
    {
      label: 'AggregateRepository.apply, existing, tip cached',
      minimum: 3,
      minimumIs: 'read (304) + batch + view write',
      run: () => warm.apply(new Add(id)),
    },
    {
      label: 'AggregateRepository.apply, existing, new process',
      // No etag of the view known: one patch, conditional on the stored version being older.
      minimum: 3,
      minimumIs: 'read + batch + view write',
      run: () => new AggregateRepository(Tally, stores).apply(new Add(id)),
    },
    {
      label: 'AggregateRepository.apply x20 at once, one aggregate',
      minimum: 60,
      minimumIs: '20 x (read (304) + batch + view write)',
      run: () => Promise.all(Array.from({ length: 20 }, () => warm.apply(new Add(id)))),
    },
  ] satisfies RequestCase[];
};
