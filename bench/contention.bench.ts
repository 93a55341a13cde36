/**
 * Commands racing on one aggregate: a burst of N concurrent commutative commands (each adds 1) against one
 * counter, through `AggregateRepository.apply` on the Cosmos DB stores. Every command can be applied; the question
 * is how many are, and at what cost. Baseline, measured in the same run: the same N commands one after
 * another (no race at all). Within one instance the repository queues commands per aggregate, so a burst
 * loses no race; the same burst split over two instances (two repositories) still races, and shows the
 * optimistic retries between instances.
 */
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import {
  Aggregate,
  AggregateRoot,
  Command,
  CosmosEventStore,
  CosmosOpaqueStore,
  isConflict,
  On,
  AggregateRepository,
  type RepositoryOptions,
  type SnapshotTailStore,
} from '../src/index.js';
import { freshContainers, startServerProcess } from './embedded-process.js';
import { printTable, ratio } from './support.js';

class Added {
  constructor(readonly n: number) {}
}

@Aggregate({ type: 'Counter' })
class Counter extends AggregateRoot {
  total = 0;

  @On(Added)
  onAdded(event: Added): void {
    this.total += event.n;
  }
}

class Add extends Command<Counter> {
  readonly lifecycle = 'mutate';
  constructor(readonly aggregateId: string) {
    super();
  }
  emit(): Added {
    return new Added(1);
  }
}

class Start extends Command<Counter> {
  readonly lifecycle = 'create';
  constructor(readonly aggregateId: string) {
    super();
  }
  emit(): Added {
    return new Added(0);
  }
}

/** The store, counting the saves that lost a race (so the runs a burst took). */
function counting(store: CosmosEventStore): { store: SnapshotTailStore; conflicts: () => number } {
  let conflicts = 0;
  const counted = Object.create(store) as CosmosEventStore;
  counted.save = async (...args) => {
    try {
      return await store.save(...args);
    } catch (err) {
      if (isConflict(err)) conflicts++;
      throw err;
    }
  };
  // With the tip, commands save through saveWithTip.
  counted.saveWithTip = async (...args) => {
    try {
      return await store.saveWithTip(...args);
    } catch (err) {
      if (isConflict(err)) conflicts++;
      throw err;
    }
  };
  return { store: counted, conflicts: () => conflicts };
}

interface Outcome {
  ms: number;
  accepted: number;
  conflicts: number;
}

const ROUNDS = 5;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

export default async function (): Promise<void> {
  const server = await startServerProcess();
  const { client, events, aggregates } = await freshContainers(server, 'contention');
  try {
    const opaque = new CosmosOpaqueStore(aggregates);
    const quiet = { warn: () => undefined };

    async function run(n: number, mode: 'sequential' | 'burst' | 'two instances', options: RepositoryOptions): Promise<Outcome> {
      const { store, conflicts } = counting(new CosmosEventStore(events, { opaqueStore: opaque }));
      const counters = new AggregateRepository(Counter, { events: store, aggregates: store as CosmosEventStore, opaque }, { ...options, logger: quiet });
      const second = new AggregateRepository(Counter, { events: store, aggregates: store as CosmosEventStore, opaque }, { ...options, logger: quiet });
      const id = `counter-${randomUUID()}`;
      await counters.apply(new Start(id));
      const start = performance.now();
      let accepted = 0;
      if (mode === 'sequential') {
        for (let i = 0; i < n; i++) accepted += (await counters.apply(new Add(id))) > 0 ? 1 : 0;
      } else {
        const results = await Promise.allSettled(
          Array.from({ length: n }, (_, i) => (mode === 'two instances' && i % 2 === 1 ? second : counters).apply(new Add(id))),
        );
        accepted = results.filter((r) => r.status === 'fulfilled').length;
      }
      const ms = performance.now() - start;
      const total = (await counters.load(id)).total;
      if (total !== accepted) throw new Error(`counter ${id}: ${accepted} accepted but a total of ${total}`);
      return { ms, accepted, conflicts: conflicts() };
    }

    const rows: Array<Array<string | number>> = [
      ['commands', 'sequential (ms)', 'burst, one instance (ms)', 'burst / sequential', 'accepted', 'lost races', 'two instances (ms)', 'two / sequential', 'lost races, two'],
    ];
    for (const n of [5, 10, 20, 40]) {
      const sequential: number[] = [];
      const burst: Outcome[] = [];
      const two: Outcome[] = [];
      // Interleaved rounds: the machine's load moves all three alike.
      for (let round = 0; round < ROUNDS; round++) {
        sequential.push((await run(n, 'sequential', {})).ms);
        burst.push(await run(n, 'burst', {}));
        two.push(await run(n, 'two instances', {}));
      }
      const twoMs = median(two.map((o) => o.ms));
      const burstMs = median(burst.map((o) => o.ms));
      rows.push([
        n,
        median(sequential).toFixed(1),
        burstMs.toFixed(1),
        ratio(burstMs, median(sequential)),
        `${Math.min(...burst.map((o) => o.accepted))}/${n} (min of ${ROUNDS})`,
        median(burst.map((o) => o.conflicts)),
        twoMs.toFixed(1),
        ratio(twoMs, median(sequential)),
        median(two.map((o) => o.conflicts)),
      ]);
    }
    printTable(rows);
  } finally {
    client.dispose();
    await server.close();
  }
}
