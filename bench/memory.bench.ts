/**
 * Peak memory while reading a stream of up to 100,000 events: `load`, which returns the whole history at
 * once, against `readStream`, which holds one page at a time. The server runs in a child process, and each
 * read in a fresh worker process of its own, so the figures are the client's alone.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { CosmosEventStore } from '../src/index.js';
import { freshContainers, startServerProcess } from './embedded-process.js';
import type { MemoryJob, MemoryResult } from './memory-worker.js';
import { printTable, ratio } from './support.js';

const PAYLOAD_BYTES = 100;
const SIZES = [10_000, 30_000, 100_000];
const PAGE_SIZE = 1_000;
const REPEATS = 3;

const worker = fileURLToPath(new URL('./memory-worker.js', import.meta.url));

function measure(job: MemoryJob): Promise<MemoryResult> {
  return new Promise((resolve, reject) => {
    // A 1 MiB young generation: garbage is collected soon, so the heap peak shows what a read keeps alive
    // rather than up to 16 MiB of not-yet-collected pages. It applies to both reads alike.
    const child = spawn(process.execPath, ['--expose-gc', '--max-semi-space-size=1', worker, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as MemoryResult) : reject(new Error(`memory worker exited with ${code}`))));
  });
}

/** The median (by heap) of a few runs: one run can meet a GC at an unlucky moment. */
async function medianOf(job: MemoryJob): Promise<MemoryResult> {
  const runs: MemoryResult[] = [];
  for (let i = 0; i < REPEATS; i++) runs.push(await measure(job));
  runs.sort((x, y) => x.heapMiB - y.heapMiB);
  return runs[Math.floor(runs.length / 2)];
}

const mib = (n: number) => n.toFixed(1);

export default async function (): Promise<void> {
  const server = await startServerProcess();
  const { client, events } = await freshContainers(server, 'memory');
  try {
    const store = new CosmosEventStore(events);
    const rows: Array<Array<string | number>> = [
      [
        'events',
        'load: peak RSS (MiB)',
        'load: peak heap (MiB)',
        `readStream(${PAGE_SIZE}): peak RSS (MiB)`,
        `readStream(${PAGE_SIZE}): peak heap (MiB)`,
        'heap readStream / load',
        'load (ms)',
        'readStream (ms)',
      ],
    ];
    for (const size of SIZES) {
      // Each stream in its own partition of one container; 100 events per batch.
      const aggregateId = `stream-${size}`;
      for (let from = 1; from <= size; from += 100) {
        const records = Array.from({ length: Math.min(100, size - from + 1) }, (_, i) => ({ version: from + i, data: randomBytes(PAYLOAD_BYTES) }));
        await store.save(aggregateId, records);
      }
      const job = { endpoint: server.endpoint, key: server.key, databaseId: events.database.id, containerId: events.id, aggregateId };
      const load = await medianOf({ ...job, mode: 'load' });
      const stream = await medianOf({ ...job, mode: 'readStream', pageSize: PAGE_SIZE });
      if (load.count !== size || stream.count !== size) throw new Error(`read ${load.count} / ${stream.count} of ${size}`);
      rows.push([
        size,
        mib(load.rssMiB),
        mib(load.heapMiB),
        mib(stream.rssMiB),
        mib(stream.heapMiB),
        ratio(stream.heapMiB, load.heapMiB),
        Math.round(load.ms),
        Math.round(stream.ms),
      ]);
    }
    console.log(
      `payload ${PAYLOAD_BYTES} bytes per event; peaks above the floor just before the read, median of ${REPEATS} fresh processes; ` +
        'server in a child process',
    );
    printTable(rows);
  } finally {
    client.dispose();
    await server.close();
  }
}
