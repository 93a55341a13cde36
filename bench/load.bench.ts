/**
 * Read latency: `load` of streams of 10, 1,000 and 10,000 events against the query a user would write by hand
 * (`items.query(...).fetchAll()`), `readStream` over the same streams, and `loadTail(100)` on the
 * 10,000-event stream against loading all of it. Each stream sits in a container of its own, because the
 * embedded server scans a whole container per query; the server runs in a child process.
 */
import { randomBytes } from 'node:crypto';
import type { Container } from '@azure/cosmos';
import { CosmosEventStore } from '../src/index.js';
import { freshContainers, startServerProcess, type ServerProcess } from './embedded-process.js';
import { medianMs, printTable, ratio } from './support.js';

const PAYLOAD_BYTES = 100;
const AGGREGATE = 'order-1';

async function seed(store: CosmosEventStore, length: number): Promise<void> {
  const records = Array.from({ length }, (_, i) => ({ version: i + 1, data: randomBytes(PAYLOAD_BYTES) }));
  await store.save(AGGREGATE, records);
}

/** What a user would write without the store: one partition-scoped query, every page fetched. */
async function handWritten(events: Container): Promise<number> {
  const { resources } = await events.items
    .query<{ v: number; d: string }>(
      { query: 'SELECT c.v, c.d FROM c WHERE c.a = @a ORDER BY c.v ASC', parameters: [{ name: '@a', value: AGGREGATE }] },
      { partitionKey: AGGREGATE, maxItemCount: -1 },
    )
    .fetchAll();
  return resources.length;
}

async function drain(stream: AsyncIterable<unknown>): Promise<number> {
  let n = 0;
  for await (const _ of stream) n++;
  return n;
}

export default async function (): Promise<void> {
  const server: ServerProcess = await startServerProcess();
  const opened: Array<{ dispose(): void }> = [];
  try {
    const rows: Array<Array<string | number>> = [
      ['events', 'load (ms)', 'hand-written query (ms)', 'readStream, pages of 1000 (ms)', 'load / query', 'readStream / load'],
    ];
    let tailRows: Array<Array<string | number>> = [];
    for (const [length, runs] of [
      [10, 41],
      [1_000, 21],
      [10_000, 7],
    ]) {
      const { client, events } = await freshContainers(server, `load-${length}`);
      opened.push(client);
      const store = new CosmosEventStore(events);
      await seed(store, length);
      if ((await store.load(AGGREGATE)).records.length !== length) throw new Error('seeding failed');
      const load = await medianMs(runs, () => store.load(AGGREGATE));
      const query = await medianMs(runs, () => handWritten(events));
      const stream = await medianMs(runs, () => drain(store.readStream(AGGREGATE)));
      rows.push([length, load.toFixed(2), query.toFixed(2), stream.toFixed(2), ratio(load, query), ratio(stream, load)]);
      if (length === 10_000) {
        const tail = await medianMs(runs * 3, () => store.loadTail(AGGREGATE, 100));
        const full = await medianMs(runs, () => store.load(AGGREGATE));
        tailRows = [
          ['on 10,000 events', 'ms', 'vs load'],
          ['load (all 10,000)', full.toFixed(2), ratio(full, full)],
          ['loadTail(100)', tail.toFixed(2), ratio(tail, full)],
        ];
      }
    }
    console.log(`payload ${PAYLOAD_BYTES} bytes per event; median wall time; server in a child process`);
    printTable(rows);
    console.log('');
    printTable(tailRows);
  } finally {
    for (const client of opened) client.dispose();
    await server.close();
  }
}
