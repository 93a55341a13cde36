/**
 * Loading an aggregate of 10,000 events with a snapshot every 100 versions, against replaying the whole
 * stream (the same stream read by a class without snapshots), on the embedded Cosmos server.
 */
import { CosmosClient } from '@azure/cosmos';
import {
  Aggregate,
  AggregateRoot,
  Command,
  CosmosEventStore,
  CosmosOpaqueStore,
  ensureContainers,
  ensureDatabase,
  On,
  AggregateRepository,
  type AggregateClass,
  type SnapshotTailStore,
} from '../src/index.js';
import { startEmbeddedCosmos } from '../src/testing.js';
import { medianMs, printTable, ratio } from './support.js';

const EVENTS = 10_000;
const EVERY = 100;

class Incremented {
  constructor(readonly by: number) {}
}

@Aggregate({ type: 'Counter' })
class Counter extends AggregateRoot {
  total = 0;
  @On(Incremented)
  onIncremented(event: Incremented): void {
    this.total += event.by;
  }
}

@Aggregate({ type: 'Counter', snapshotEvery: EVERY })
class SnappedCounter extends Counter {}

class IncrementMany extends Command<Counter> {
  readonly lifecycle = 'mutate';
  constructor(
    readonly aggregateId: string,
    readonly count: number,
  ) {
    super();
  }
  emit(): Incremented[] {
    return Array.from({ length: this.count }, () => new Incremented(1));
  }
}

class Start extends Command<Counter> {
  readonly lifecycle = 'create';
  constructor(readonly aggregateId: string) {
    super();
  }
  emit(): Incremented {
    return new Incremented(1);
  }
}

export default async function (): Promise<void> {
  const server = await startEmbeddedCosmos();
  const client = new CosmosClient({ endpoint: server.endpoint, key: server.key });
  try {
    const database = await ensureDatabase(client, 'bench-snapshot');
    await ensureContainers(database, 'events', 'aggregates');
    const opaque = new CosmosOpaqueStore(database.container('aggregates'));
    const store = new CosmosEventStore(database.container('events'), { opaqueStore: opaque });
    let recordsRead = 0;
    const counted: SnapshotTailStore = {
      save: (id, records, options) => store.save(id, records, options),
      load: async (id, options) => tally(await store.load(id, options)),
      loadTail: async (id, n, options) => tally(await store.loadTail(id, n, options)),
    };
    function tally<H extends { records: unknown[] }>(history: H): H {
      recordsRead += history.records.length;
      return history;
    }
    const repository = <A extends Counter>(cls: AggregateClass<A>) =>
      new AggregateRepository(cls, { events: counted, aggregates: store, opaque }, { logger: { warn: () => undefined } });

    // One stream written with snapshots (every 100th version is one), so both classes read the same stream.
    const writer = repository(SnappedCounter);
    await writer.apply(new Start('c'));
    while ((await writer.load('c')).total < EVENTS) {
      const { total } = await writer.load('c');
      await writer.apply(new IncrementMany('c', Math.min(90, EVENTS - total)));
    }

    const rows: (string | number)[][] = [['load of a 10,000-event stream', 'records read', 'median ms', 'vs full replay']];
    let baseline = 0;
    for (const [label, cls] of [
      ['full replay (no snapshots)', Counter],
      [`snapshot every ${EVERY}: loadTail(${EVERY})`, SnappedCounter],
    ] as const) {
      const accounts = repository(cls);
      recordsRead = 0;
      const state = await accounts.load('c');
      const read = recordsRead;
      if (state.total !== EVENTS) throw new Error(`${label}: total ${state.total}, expected ${EVENTS}`);
      const ms = await medianMs(9, () => accounts.load('c'));
      baseline ||= ms;
      rows.push([label, read, ms.toFixed(1), ratio(ms, baseline)]);
    }
    printTable(rows);
  } finally {
    client.dispose();
    await server.close();
  }
}
