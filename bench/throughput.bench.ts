/**
 * Append throughput (events/s) of `CosmosEventStore.save` for appends of 1, 10 and 100 events, against what a
 * user would write without it: one `items.create` per event, and a bare `items.batch` of the same documents.
 * The server runs in a child process; appends are sequential, each waiting for the one before (a writer
 * appending to its own stream).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Container, OperationInput } from '@azure/cosmos';
import { CosmosEventStore, type EventRecord } from '../src/index.js';
import { freshContainers, startServerProcess } from './embedded-process.js';
import { printTable, ratio } from './support.js';

const PAYLOAD_BYTES = 100;
const ROUNDS = 9;

type Append = (aggregateId: string, records: EventRecord[]) => Promise<void>;

/** Events per second of one round: `appends` sequential appends of `size` events each to a fresh aggregate. */
async function roundRate(append: Append, size: number, appends: number, label: string): Promise<number> {
  const payloads = Array.from({ length: size }, () => randomBytes(PAYLOAD_BYTES));
  const id = `${label}-${size}-${Math.random()}`;
  let version = 0;
  const start = performance.now();
  for (let a = 0; a < appends; a++) {
    await append(
      id,
      payloads.map((data) => ({ version: ++version, data })),
    );
  }
  return (appends * size) / ((performance.now() - start) / 1000);
}

/**
 * Median events/s of each contender, their rounds interleaved (A B C, B C A, ...) so that load from other
 * processes on the machine falls on all of them alike. One warm-up round each first.
 */
async function compare(contenders: Array<[string, Append, number]>, size: number): Promise<number[]> {
  const rates: number[][] = contenders.map(() => []);
  for (let round = 0; round <= ROUNDS; round++) {
    for (let k = 0; k < contenders.length; k++) {
      const i = (round + k) % contenders.length;
      const [label, append, appends] = contenders[i];
      const rate = await roundRate(append, size, appends, label);
      if (round > 0) rates[i].push(rate);
    }
  }
  return rates.map((r) => r.sort((x, y) => x - y)[Math.floor(r.length / 2)]);
}

/** The document a user would write by hand: the same fields as ours. */
function documentOf(aggregateId: string, record: EventRecord) {
  return { id: String(record.version), a: aggregateId, v: record.version, d: Buffer.from(record.data).toString('base64') };
}

export default async function (): Promise<void> {
  const server = await startServerProcess();
  const { client, events } = await freshContainers(server, 'throughput');
  try {
    const store = new CosmosEventStore(events);
    const ours: Append = (id, records) => store.save(id, records);
    const oneCreatePerEvent: Append = async (id, records) => {
      for (const record of records) await events.items.create(documentOf(id, record));
    };
    const bareBatch = (container: Container): Append => async (id, records) => {
      const operations: OperationInput[] = records.map((r) => ({ operationType: 'Create', resourceBody: documentOf(id, r) }));
      const response = await container.items.batch(operations, id);
      if (response.result?.some((r) => r.statusCode >= 400)) throw new Error('batch failed');
    };

    const rows: Array<Array<string | number>> = [
      ['events per append', 'save (events/s)', 'items.create x N (events/s)', 'bare items.batch (events/s)', 'save / create', 'save / batch'],
    ];
    for (const [size, appends] of [
      // Rounds of at least ~200 ms each: shorter ones measure the neighbours on this shared machine.
      [1, 300],
      [10, 100],
      [100, 25],
    ]) {
      const [saved, created, batch] = await compare(
        [
          ['save', ours, appends],
          // One request per event: fewer appends, or this row alone would take minutes.
          ['create', oneCreatePerEvent, Math.max(4, Math.floor(appends / size))],
          ['batch', bareBatch(events), appends],
        ],
        size,
      );
      rows.push([size, Math.round(saved), Math.round(created), Math.round(batch), ratio(saved, created), ratio(saved, batch)]);
    }
    console.log(`payload ${PAYLOAD_BYTES} bytes per event; median of ${ROUNDS} interleaved rounds; server in a child process`);
    printTable(rows);
    console.log('\nclient-side CPU per append, no network (a container whose batch answers at once):');
    printTable(await clientSideCost());
  } finally {
    client.dispose();
    await server.close();
  }
}

/**
 * What `save` itself costs per call next to building the same batch by hand, with the network taken out: a
 * stand-in container answers every batch at once. This is the part of the throughput ratio that is ours.
 */
async function clientSideCost(): Promise<Array<Array<string | number>>> {
  const instant = {
    items: { batch: async (ops: unknown[]) => ({ code: 200, result: ops.map(() => ({ statusCode: 201 })) }) },
  } as unknown as Container;
  const store = new CosmosEventStore(instant);
  const rows: Array<Array<string | number>> = [['events per append', 'save (µs)', 'hand-built batch (µs)', 'save - hand-built (µs)']];
  for (const size of [1, 10, 100]) {
    const payloads = Array.from({ length: size }, () => randomBytes(PAYLOAD_BYTES));
    let version = 0;
    const records = () => payloads.map((data) => ({ version: ++version, data }));
    const calls = 20_000 / size;
    const time = async (fn: () => Promise<unknown>) => {
      const samples: number[] = [];
      for (let round = 0; round < 7; round++) {
        const start = performance.now();
        for (let i = 0; i < calls; i++) await fn();
        samples.push(((performance.now() - start) * 1000) / calls);
      }
      return samples.sort((x, y) => x - y)[3];
    };
    const ours = await time(() => store.save('order-1', records()));
    const byHand = await time(async () => {
      const operations: OperationInput[] = records().map((r) => ({ operationType: 'Create', resourceBody: documentOf('order-1', r) }));
      await instant.items.batch(operations, 'order-1');
    });
    rows.push([size, ours.toFixed(1), byHand.toFixed(1), (ours - byHand).toFixed(1)]);
  }
  return rows;
}
