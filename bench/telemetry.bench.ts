/**
 * What the OpenTelemetry instrumentation costs: with `@opentelemetry/api` installed and no SDK registered
 * (the library as most apps run it) against the same calls uninstrumented, and with an SDK registered
 * (spans and metrics recorded, nothing exported). Medians of interleaved rounds, in one run.
 */
import { metrics, trace } from '@opentelemetry/api';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { CosmosEventStore, telemetryReady, type EventRecord } from '../src/index.js';
import { ChunkedEventStore } from '../src/modules/event-store/event-store-base.js';
import { traceStore } from '../src/modules/telemetry/index.js';
import { freshContainers, startServerProcess } from './embedded-process.js';
import { printTable, ratio } from './support.js';

const ROUNDS = 7;
const CALLS = 200;
const WRAPS = 200_000;

const records = (count: number): EventRecord[] =>
  Array.from({ length: count }, (_, i) => ({ version: i + 1, data: new TextEncoder().encode(`{"n":${i + 1}}`) }));

/** Mean microseconds per call of `calls` sequential calls of `fn`. */
async function perCallUs(calls: number, fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < calls; i++) await fn();
  return ((performance.now() - start) * 1000) / calls;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

export default async function (): Promise<void> {
  await telemetryReady();
  const server = await startServerProcess();
  const { client, events } = await freshContainers(server, 'telemetry');
  try {
    const store = new CosmosEventStore(events);
    await store.save('stream', records(10));
    // The instrumented call and the very same work without the wrapper (the base class's load).
    const traced = () => store.load('stream');
    const bare = () => ChunkedEventStore.prototype.load.call(store, 'stream');
    const noop = async () => undefined;
    const wrapped = () => traceStore(events, 'load', {}, noop);
    await perCallUs(CALLS, traced);
    await perCallUs(CALLS, bare);

    const sample = async () => {
      const rows = { traced: [] as number[], bare: [] as number[], wrapped: [] as number[], noop: [] as number[] };
      for (let round = 0; round < ROUNDS; round++) {
        rows.bare.push(await perCallUs(CALLS, bare));
        rows.traced.push(await perCallUs(CALLS, traced));
        rows.noop.push(await perCallUs(WRAPS, noop));
        rows.wrapped.push(await perCallUs(WRAPS, wrapped));
      }
      return { traced: median(rows.traced), bare: median(rows.bare), wrapped: median(rows.wrapped), noop: median(rows.noop) };
    };

    const off = await sample();
    // An SDK registered: spans are recorded (no processor exports them) and metrics aggregated (no reader).
    trace.setGlobalTracerProvider(new BasicTracerProvider());
    metrics.setGlobalMeterProvider(new MeterProvider());
    const on = await sample();
    trace.disable();
    metrics.disable();

    printTable([
      ['SDK', 'load of 10, uninstrumented (µs)', 'load of 10, instrumented (µs)', 'instrumented / uninstrumented', 'wrapper alone (µs)', 'empty async call (µs)'],
      ['none', off.bare.toFixed(0), off.traced.toFixed(0), ratio(off.traced, off.bare), off.wrapped.toFixed(2), off.noop.toFixed(2)],
      ['registered', on.bare.toFixed(0), on.traced.toFixed(0), ratio(on.traced, on.bare), on.wrapped.toFixed(2), on.noop.toFixed(2)],
    ]);
  } finally {
    client.dispose();
    await server.close();
  }
}
