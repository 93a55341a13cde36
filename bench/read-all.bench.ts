/**
 * Reads across streams: `readAll({ types })` against what an application does without it, a `load` of every
 * stream, keeping the events of that type. 200 streams of 10 events, one of them of the type asked for.
 * Requests are counted at a fault proxy; times are medians, as ratios against the load per stream measured in
 * the same run (the embedded server scans the whole container per query, so its absolute times are not
 * Azure's: on Cosmos DB the type filter is an index lookup).
 */
import { CosmosClient } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import { CosmosEventStore, ensureContainers, ensureDatabase, type EventRecord } from '../src/index.js';
import { startFaultProxy } from '../src/testing.js';
import { startServerProcess } from './embedded-process.js';
import { medianMs, printTable, ratio } from './support.js';

const STREAMS = 200;
const EVENTS_PER_STREAM = 10;
const encoder = new TextEncoder();

export default async function (): Promise<void> {
  const server = await startServerProcess();
  const proxy = await startFaultProxy({ target: server.endpoint });
  const client = new CosmosClient({
    endpoint: proxy.endpoint,
    key: server.key,
    connectionPolicy: { enableBackgroundEndpointRefreshing: false },
  });
  try {
    const database = await ensureDatabase(client, `read-all-${randomUUID()}`);
    await ensureContainers(database);
    const store = new CosmosEventStore(database.container('events'));
    const ids = Array.from({ length: STREAMS }, (_, i) => `Order/o-${i}`);
    for (const id of ids) {
      const records: EventRecord[] = Array.from({ length: EVENTS_PER_STREAM }, (_, v) => ({
        version: v + 1,
        data: encoder.encode(`{"n":${v + 1},"note":"${'x'.repeat(60)}"}`),
        type: v === 0 ? 'OrderPlaced' : 'LineAdded',
      }));
      await store.save(id, records);
    }

    const byReadAll = async () => {
      let n = 0;
      for await (const item of store.readAll({ types: ['OrderPlaced'] })) if (item.record.type === 'OrderPlaced') n++;
      return n;
    };
    const byLoads = async () => {
      let n = 0;
      for (const id of ids) for (const r of (await store.load(id)).records) if (r.type === 'OrderPlaced') n++;
      return n;
    };
    if ((await byReadAll()) !== STREAMS || (await byLoads()) !== STREAMS) throw new Error('seeding failed');

    const requests = async (fn: () => Promise<unknown>) => {
      await proxy.settle();
      proxy.clearRecords();
      await fn();
      await proxy.settle();
      return proxy.records.length;
    };
    const readAllRequests = await requests(byReadAll);
    const loadRequests = await requests(byLoads);
    const readAllMs = await medianMs(9, byReadAll);
    const loadMs = await medianMs(9, byLoads);
    printTable([
      ['200 streams x 10 events, the 200 OrderPlaced', 'requests', 'median ms', 'vs a load per stream'],
      ['a load per stream (baseline)', loadRequests, loadMs.toFixed(1), '1.00x'],
      ["readAll({ types: ['OrderPlaced'] })", readAllRequests, readAllMs.toFixed(1), ratio(readAllMs, loadMs)],
    ]);
  } finally {
    client.dispose();
    await proxy.close();
    await server.close();
  }
}
