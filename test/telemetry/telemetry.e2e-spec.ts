/*
 * OpenTelemetry (issue 19): spans, attributes and metrics of the store, the aggregates store and the
 * repository, read from the SDK's in-memory exporters. The embedded server charges no request units: the
 * fault proxy answers with an `x-ms-request-charge` of its own, so the sums are known.
 */
import { randomUUID } from 'node:crypto';
import { context, metrics, trace, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { AggregationTemporality, MeterProvider, MetricReader, type HistogramMetricData } from '@opentelemetry/sdk-metrics';
import {
  Aggregate,
  AggregateRoot,
  Command,
  CosmosEventStore,
  CosmosOpaqueStore,
  On,
  AggregateRepository,
  cosmosTelemetryPlugin,
  currentTraceparent,
  telemetryReady,
  traceSubscriberPage,
  WriteOutcomeUnknownError,
  JsonEventSerializer,
  OnStoredEvent,
  Subscriber,
} from '../../src/index.js';
import { gate, startFaultyCosmos, type FaultyCosmos } from '../support/faults.js';
import { DeliveryLog, eventually, startInstance } from '../support/subscriptions.js';

/** Counts its decodings: reading a page's traceparents must not decode its events a second time. */
class CountingSerializer extends JsonEventSerializer {
  private readonly seen = new WeakSet<Uint8Array>();
  decoded = 0;
  decodedAgain = 0;
  override deserialize(data: Uint8Array): ReturnType<JsonEventSerializer['deserialize']> {
    this.decoded++;
    // The very bytes of one page's event (other events may hold equal bytes); one it cannot read included.
    if (this.seen.has(data)) this.decodedAgain++;
    this.seen.add(data);
    return super.deserialize(data);
  }
}
const countingSerializer = new CountingSerializer();

@Subscriber({ name: 'traced', serializer: countingSerializer })
class TracedRecorder {
  @OnStoredEvent()
  handle(): void {}
}

class Counted {
  constructor(readonly by: number) {}
}

@Aggregate({ type: 'Tally' })
class Tally extends AggregateRoot {
  total = 0;
  @On(Counted)
  onCounted(event: Counted): void {
    this.total += event.by;
  }
}

class Count extends Command<Tally> {
  readonly lifecycle = 'mutate';
  constructor(
    readonly aggregateId: string,
    readonly by: number,
  ) {
    super();
  }
  emit(): Counted {
    return new Counted(this.by);
  }
}

class Start extends Command<Tally> {
  readonly lifecycle = 'create';
  constructor(readonly aggregateId: string) {
    super();
  }
  emit(): Counted {
    return new Counted(0);
  }
}

/** A reader the test collects from when it wants (no timer). */
class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

const CHARGE = 2.5;
const spans = new InMemorySpanExporter();
const reader = new TestReader();
let faulty: FaultyCosmos;
let repository: AggregateRepository<Tally>;
let events: CosmosEventStore;
let opaque: CosmosOpaqueStore;

beforeAll(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
  await telemetryReady();
  faulty = await startFaultyCosmos({ proxy: { requestCharge: CHARGE }, plugins: [cosmosTelemetryPlugin()] });
  opaque = new CosmosOpaqueStore(faulty.client.database(faulty.events.database.id).container('aggregates'));
  events = new CosmosEventStore(faulty.events, { opaqueStore: opaque });
  repository = new AggregateRepository(Tally, { events, aggregates: events, opaque }, { retry: { initialDelayMs: 0, maxDelayMs: 1 } });
});

afterAll(async () => {
  await faulty?.close();
  trace.disable();
  metrics.disable();
  context.disable();
});

beforeEach(() => spans.reset());

const byName = (name: string) => spans.getFinishedSpans().filter((s) => s.name === name);
const childrenOf = (parent: ReadableSpan) =>
  spans.getFinishedSpans().filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId);

/** The sum of a counter over every attribute set, as collected now. */
async function counterTotal(name: string): Promise<number> {
  const { resourceMetrics } = await reader.collect();
  let total = 0;
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      if (metric.descriptor.name !== name) continue;
      for (const point of metric.dataPoints) total += point.value as number;
    }
  }
  return total;
}

async function chargeByOperation(): Promise<Map<string, { sum: number; count: number }>> {
  const { resourceMetrics } = await reader.collect();
  const found = new Map<string, { sum: number; count: number }>();
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      if (metric.descriptor.name !== 'azure.cosmosdb.client.operation.request_charge') continue;
      for (const point of (metric as HistogramMetricData).dataPoints) {
        const op = String(point.attributes['eventstore.operation']);
        const seen = found.get(op) ?? { sum: 0, count: 0 };
        found.set(op, { sum: seen.sum + (point.value.sum ?? 0), count: seen.count + point.value.count });
      }
    }
  }
  return found;
}

describe('telemetry with an OpenTelemetry SDK registered', () => {
  it('a command that conflicts once: its span, its attempts and its stores\' spans with request charges', async () => {
    const id = randomUUID();
    await repository.apply(new Start(id));
    spans.reset();
    // Hold the command's first batch at the proxy while another writer takes version 2.
    const held = gate();
    faulty.proxy.addRule({ kind: 'batch', times: 1, action: { type: 'latency', until: held.promise } });
    faulty.proxy.clearRecords();
    const running = repository.apply(new Count(id, 5));
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The other writer goes straight to the server: every request through the proxy is the command's.
    const direct = new CosmosEventStore(faulty.directEvents, { opaqueStore: new CosmosOpaqueStore(faulty.directEvents.database.container('aggregates')) });
    await new AggregateRepository(Tally, { events: direct, aggregates: direct, opaque }).apply(new Count(id, 1));
    held.open();
    await expect(running).resolves.toBe(3);

    // The other writer's command finished first; ours is the last.
    const command = byName('apply Tally').at(-1)!;
    expect(command.kind).toBe(SpanKind.INTERNAL);
    expect(command.attributes).toMatchObject({
      'db.system.name': 'azure.cosmosdb',
      'eventstore.aggregate.type': 'Tally',
      'eventstore.command': 'Count',
      'eventstore.aggregate.version': 3,
      'eventstore.attempts': 2,
      'eventstore.conflicts': 1,
      'eventstore.outcome': 'conflict_retried',
    });
    // Every request the command made is charged to it.
    await faulty.proxy.settle();
    expect(command.attributes['azure.cosmosdb.operation.request_charge']).toBe(CHARGE * faulty.proxy.count());

    // Events and the aggregate's tip in one batch per attempt: the lost one, then the one that won.
    const saves = childrenOf(command).filter((s) => s.name === 'saveWithTip events');
    expect(saves).toHaveLength(2);
    const [lost, won] = saves.sort((a, b) => a.startTime[1] - b.startTime[1] + (a.startTime[0] - b.startTime[0]) * 1e9);
    expect(lost.status.code).toBe(SpanStatusCode.ERROR);
    expect(lost.attributes).toMatchObject({ 'error.type': 'ConcurrencyError', 'eventstore.outcome': 'conflict', 'eventstore.record.count': 1, 'eventstore.aggregate.version': 2 });
    expect(won.status.code).not.toBe(SpanStatusCode.ERROR);
    expect(won.kind).toBe(SpanKind.CLIENT);
    expect(won.attributes).toMatchObject({
      'db.system.name': 'azure.cosmosdb',
      'db.operation.name': 'execute_batch',
      'db.namespace': faulty.events.database.id,
      'db.collection.name': 'events',
      'db.response.status_code': '200',
      'eventstore.aggregate.version': 3,
      'eventstore.record.count': 1,
      'azure.cosmosdb.operation.request_charge': CHARGE,
    });
    // The state is read from the tip: a 304 through the cache first, then the other writer's tip.
    const loads = childrenOf(command).filter((s) => s.name === 'readTip events');
    expect(loads.map((s) => s.attributes['db.response.status_code'])).toEqual(['304', '200']);
    expect(loads[0].attributes).toMatchObject({ 'db.operation.name': 'read_item' });
    // Materialized with its version: only if newer.
    const materialized = childrenOf(command).filter((s) => s.name === 'putIfNewer aggregates');
    expect(materialized).toHaveLength(1);
    expect(materialized[0].attributes).toMatchObject({ 'db.operation.name': 'replace_item', 'db.collection.name': 'aggregates' });

    // No id, key, token or payload in any attribute.
    for (const span of spans.getFinishedSpans()) {
      const text = JSON.stringify(span.attributes);
      expect(text).not.toContain(id);
      expect(text).not.toContain(faulty.cosmos.key);
    }
  });

  it('the request-charge metric sums to the proxy\'s charge times the requests of a known sequence of calls', async () => {
    const before = await chargeByOperation();
    faulty.proxy.clearRecords();
    const stream = randomUUID();
    const record = (version: number) => ({ version, data: new TextEncoder().encode(`{"n":${version}}`) });
    await events.save(stream, [record(1), record(2)]);
    await events.save(stream, [record(3)]);
    await events.load(stream);
    await events.loadTail(stream, 2);
    const read = [];
    for await (const r of events.readStream(stream, { pageSize: 2 })) read.push(r.version);
    expect(read).toEqual([1, 2, 3]);
    await opaque.put({ pk: stream, sk: 's', body: new Uint8Array([1]) });
    await opaque.get(stream, 's');
    await opaque.delete(stream, 's');
    await faulty.proxy.settle();
    const requests = faulty.proxy.count();
    const after = await chargeByOperation();
    let total = 0;
    for (const [op, { sum }] of after) total += sum - (before.get(op)?.sum ?? 0);
    expect(total).toBeCloseTo(CHARGE * requests, 6);
    // Each batch's charge is the batch's: the save above it adds none of its own.
    const batches = after.get('batch')!.count - (before.get('batch')?.count ?? 0);
    expect(batches).toBe(2);
    expect(after.get('save')?.count ?? 0).toBe(before.get('save')?.count ?? 0);
    expect(after.get('readStream')!.count - (before.get('readStream')?.count ?? 0)).toBeGreaterThanOrEqual(2);
  });

  it('a subscriber page\'s span links to the span that stored its event, by the stored traceparent', async () => {
    let stored: string | undefined;
    await repository.apply(new Start(randomUUID())).then(() => undefined);
    const tracer = trace.getTracer('test');
    await tracer.startActiveSpan('request', async (span) => {
      stored = currentTraceparent();
      span.end();
    });
    expect(stored).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    await traceSubscriberPage({ group: 'order-stats', events: 3, range: '-FF', traceparents: [stored!, 'garbage'] }, async () => undefined);
    const [page] = byName('process order-stats');
    expect(page.kind).toBe(SpanKind.CONSUMER);
    expect(page.attributes).toMatchObject({ 'eventstore.subscriber.group': 'order-stats', 'eventstore.record.count': 3 });
    expect(page.links.map((l) => `00-${l.context.traceId}-${l.context.spanId}-01`)).toEqual([stored]);
  });

  it('a subscriber reading the change feed handles the page in a span linked to the command that stored it', async () => {
    const instance = await startInstance({
      name: 'traced',
      endpoint: faulty.cosmos.endpoint,
      key: faulty.cosmos.key,
      databaseId: faulty.events.database.id,
      subscribers: [TracedRecorder],
      log: new DeliveryLog(),
    });
    try {
      const id = randomUUID();
      await repository.apply(new Start(id));
      const command = byName('apply Tally').at(-1)!;
      await instance.subscriptions.waitForCatchUp('traced', { timeoutMs: 10_000 });
      await eventually('the page span is recorded', () => byName('process traced').length > 0);
      const pages = byName('process traced');
      expect(pages[0].kind).toBe(SpanKind.CONSUMER);
      const linked = pages.flatMap((p) => p.links.map((l) => l.context.spanId));
      // The events remember the span they were stored under (their envelope's traceparent header).
      expect(linked).toContain(command.spanContext().spanId);
      // Each event decoded once, for the span's links and its handler alike.
      expect(countingSerializer.decoded).toBeGreaterThan(0);
      expect(countingSerializer.decodedAgain).toBe(0);
    } finally {
      await instance.close();
    }
  });

  it('a batch retried after a 503 counts its retry; a write whose outcome stays unknown is counted as such', async () => {
    const retriesBefore = await counterTotal('eventstore.retries');
    const unknownBefore = await counterTotal('eventstore.unknown_outcomes');
    const record = { version: 1, data: new Uint8Array([1]) };
    faulty.proxy.addRule({ kind: 'batch', times: 1, action: { type: 'status', status: 503 } });
    await events.save(randomUUID(), [record]);
    const batch = byName('batch events').at(-1)!;
    expect(batch.attributes).toMatchObject({ 'eventstore.retries': 1, 'db.response.status_code': '200' });
    expect(byName('save events').at(-1)!.attributes['eventstore.retries']).toBe(1);
    expect((await counterTotal('eventstore.retries')) - retriesBefore).toBe(1);

    // Every attempt's answer lost after the server ran it: the store cannot tell whether the chunk landed.
    const impatient = new CosmosEventStore(faulty.events, { retries: { maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 1 } });
    const rule = faulty.proxy.addRule({ kind: 'batch', action: { type: 'reset', when: 'before' } });
    await expect(impatient.save(randomUUID(), [record])).rejects.toBeInstanceOf(WriteOutcomeUnknownError);
    rule.remove();
    const failed = byName('batch events').at(-1)!;
    expect(failed.status.code).toBe(SpanStatusCode.ERROR);
    expect(failed.attributes).toMatchObject({ 'error.type': 'WriteOutcomeUnknownError', 'eventstore.outcome': 'unknown', 'eventstore.retries': 1 });
    expect((await counterTotal('eventstore.unknown_outcomes')) - unknownBefore).toBe(1);
  });
});
