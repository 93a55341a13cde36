/**
 * One memory measurement, in a fresh process so that each starts from the same floor and the high-water
 * mark of RSS belongs to this read alone: `node --expose-gc memory-worker.js <json>` reads one stream with
 * `load` (holding the history, as a caller of load does) or `readStream` (folding each record into a sum and
 * dropping it), and prints `{ rssMiB, heapMiB, ms, count }` as one JSON line: peaks above the floor measured
 * just before the read.
 */
import { performance } from 'node:perf_hooks';
import { CosmosClient } from '@azure/cosmos';
import { CosmosEventStore } from '../src/index.js';

export interface MemoryJob {
  endpoint: string;
  key: string;
  databaseId: string;
  containerId: string;
  aggregateId: string;
  mode: 'load' | 'readStream';
  pageSize?: number;
}

export interface MemoryResult {
  rssMiB: number;
  heapMiB: number;
  ms: number;
  count: number;
}

const MiB = 1024 * 1024;

const job = JSON.parse(process.argv[2]) as MemoryJob;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

const client = new CosmosClient({
  endpoint: job.endpoint,
  key: job.key,
  connectionPolicy: { enableBackgroundEndpointRefreshing: false },
});
const store = new CosmosEventStore(client.database(job.databaseId).container(job.containerId));
// Warm the client (account read, query path) on an empty stream before the floor is taken.
await store.load(`${job.aggregateId}-warm-up`);
for await (const _ of store.readStream(`${job.aggregateId}-warm-up`)) void _;

gc();
const floorRss = process.memoryUsage.rss();
const floorHeap = process.memoryUsage().heapUsed;
// maxRSS is the process's high-water mark (KiB); it sees the peak inside a synchronous parse no sampling can.
const maxRssBefore = process.resourceUsage().maxRSS * 1024;
let peakHeap = floorHeap;
let peakRss = floorRss;
const sample = () => {
  const { heapUsed, rss } = process.memoryUsage();
  if (heapUsed > peakHeap) peakHeap = heapUsed;
  if (rss > peakRss) peakRss = rss;
};
// JSON parsing of a page is synchronous: the timer samples between pages, the explicit calls at page ends.
const timer = setInterval(sample, 1);

const start = performance.now();
let count = 0;
let bytes = 0;
if (job.mode === 'load') {
  const history = await store.load(job.aggregateId);
  sample();
  for (const record of history.records) {
    bytes += record.data.byteLength;
    count++;
  }
  sample();
} else {
  for await (const record of store.readStream(job.aggregateId, { pageSize: job.pageSize })) {
    bytes += record.data.byteLength;
    if (++count % 100 === 0) sample();
  }
  sample();
}
const ms = performance.now() - start;
clearInterval(timer);
const maxRssAfter = process.resourceUsage().maxRSS * 1024;
// The read raised the high-water mark: that is its peak. Otherwise start-up had been higher: keep the samples.
if (maxRssAfter > maxRssBefore) peakRss = Math.max(peakRss, maxRssAfter);
client.dispose();

const result: MemoryResult = {
  rssMiB: Math.max(0, peakRss - floorRss) / MiB,
  heapMiB: (peakHeap - floorHeap) / MiB,
  ms,
  count,
};
if (bytes < 0) throw new Error('unreachable'); // keeps `bytes` observed, so the loops are not optimized away
process.stdout.write(`${JSON.stringify(result)}\n`);
