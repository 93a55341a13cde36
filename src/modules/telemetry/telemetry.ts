import { AsyncLocalStorage } from 'node:async_hooks';
import type { Container, PluginConfig } from '@azure/cosmos';
import type { Attributes, Counter, Gauge, Histogram, Link, Meter, MeterProvider, Span, Tracer } from '@opentelemetry/api';
import { otel, otelLoaded, type OtelApiModule } from './otel-api.js';

// This module's declarations name no type of @opentelemetry/api: an app compiling against the library
// without that optional package installed sees no missing module.

/**
 * Resolves once the library knows whether `@opentelemetry/api` is installed. Calls made before that are not
 * traced; an app that registers its SDK before creating its Nest application never sees the difference,
 * a test can await this before its first traced call.
 */
export function telemetryReady(): Promise<void> {
  return otelLoaded();
}

/** The instrumentation scope of the library's tracer and meter. */
export const INSTRUMENTATION_SCOPE = 'nest-cosmos-eventstore';

/** The store calls that get a span, by the names the library's API gives them. */
export type StoreOperation =
  | 'save'
  | 'batch'
  | 'load'
  | 'loadTail'
  | 'readStream'
  | 'readTip'
  | 'saveWithTip'
  | 'get'
  | 'put'
  | 'putIfNewer'
  | 'delete'
  | 'query';

// The Cosmos DB operation behind each store call, as OpenTelemetry's Azure Cosmos DB conventions name them.
const DB_OPERATION: Record<StoreOperation, string> = {
  save: 'execute_batch',
  batch: 'execute_batch',
  load: 'query_items',
  loadTail: 'query_items',
  readStream: 'query_items',
  readTip: 'read_item',
  saveWithTip: 'execute_batch',
  get: 'read_item',
  put: 'upsert_item',
  putIfNewer: 'replace_item',
  delete: 'delete_item',
  query: 'query_items',
};

// Statuses the SDK or the store retry (a request without a status is a lost connection or a timeout).
const TRANSIENT = new Set([408, 410, 429, 449, 500, 503]);

/** What one traced call heard of its requests, and what its children tell it. */
interface Scope {
  /** Store calls take the status of their requests and of their children's; commands and pages do not. */
  store: boolean;
  span?: Span;
  parent?: Scope;
  /** Request units of its requests and of its children's. */
  requestCharge: number;
  /** Request units of the requests made by this call itself, not by a traced call below it. */
  ownCharge: number;
  ownRequests: number;
  requests: number;
  transientFailures: number;
  lastTransient: boolean;
  status?: number;
  substatus?: number;
  consistency?: string;
  /** Conflicts of the saves below a command. */
  conflicts: number;
  /** Saves below a command that stored something. */
  saves: number;
  /** Retries of the calls below. */
  childRetries: number;
}

const scopes = new AsyncLocalStorage<Scope>();
// Errors already counted as a conflict or an unknown outcome (a batch's error rethrown by its save).
const counted = new WeakSet<Error>();

interface Instruments {
  provider: MeterProvider;
  meter: Meter;
  live: boolean;
  duration: Histogram;
  requestCharge: Histogram;
  conflicts: Counter;
  retries: Counter;
  unknownOutcomes: Counter;
  pending: Gauge;
  behind: Gauge;
}

let instruments: Instruments | undefined;

// Instruments of the meter provider registered now: an SDK registered after the first call is picked up.
function meterOf(api: OtelApiModule): Instruments {
  const provider = api.metrics.getMeterProvider();
  if (instruments?.provider === provider) return instruments;
  const meter = provider.getMeter(INSTRUMENTATION_SCOPE);
  instruments = {
    provider,
    meter,
    // The API's no-op meter is one object: with no SDK, nothing is measured and nothing is computed.
    live: meter !== api.createNoopMeter(),
    duration: meter.createHistogram('db.client.operation.duration', {
      unit: 's',
      description: 'Duration of the library\'s Cosmos DB operations (store calls, commands, subscriber pages)',
    }),
    requestCharge: meter.createHistogram('azure.cosmosdb.client.operation.request_charge', {
      unit: '{request_unit}',
      description: 'Request units consumed by each operation, summed over its requests (x-ms-request-charge)',
    }),
    conflicts: meter.createCounter('eventstore.conflicts', {
      unit: '{conflict}',
      description: 'Saves refused because another writer stored the version first',
    }),
    retries: meter.createCounter('eventstore.retries', {
      unit: '{retry}',
      description: 'Requests sent again after a transient failure (throttling, timeouts, lost connections)',
    }),
    unknownOutcomes: meter.createCounter('eventstore.unknown_outcomes', {
      unit: '{write}',
      description: 'Writes whose outcome stayed unknown (WriteOutcomeUnknownError)',
    }),
    pending: meter.createGauge('eventstore.subscriber.pending', {
      unit: '{change}',
      description: 'Changes a consumer group has not checkpointed yet (estimatedPending)',
    }),
    behind: meter.createGauge('eventstore.subscriber.behind', {
      unit: 'ms',
      description: 'Age of the oldest change a consumer group has not checkpointed (behindMs)',
    }),
  };
  return instruments;
}

function tracerOf(api: OtelApiModule): Tracer {
  return api.trace.getTracer(INSTRUMENTATION_SCOPE);
}

function newScope(store: boolean, parent: Scope | undefined, span: Span | undefined): Scope {
  return { store, span, parent, requestCharge: 0, ownCharge: 0, ownRequests: 0, requests: 0, transientFailures: 0, lastTransient: false, conflicts: 0, saves: 0, childRetries: 0 };
}

/** The details of a store call worth an attribute; never ids, keys or payloads. */
export interface StoreCallDetails {
  /** Records written or asked for. */
  records?: number;
  /** The highest version written. */
  version?: number;
}

/**
 * Runs one store call in a span named `<operation> <container>` (kind CLIENT) with OpenTelemetry's Azure
 * Cosmos DB attributes, and records its duration, request charge, retries, conflicts and unknown outcomes.
 * Without `@opentelemetry/api`, or with it and no SDK registered, it calls `fn` and nothing else.
 */
export function traceStore<T>(
  container: Container,
  operation: StoreOperation,
  details: StoreCallDetails,
  fn: () => Promise<T>,
  describe?: (result: T) => StoreCallDetails,
): Promise<T> {
  const api = otel();
  if (!api) return fn();
  const attributes: Attributes = {
    'db.system.name': 'azure.cosmosdb',
    'db.operation.name': DB_OPERATION[operation],
    'db.namespace': container.database.id,
    'db.collection.name': container.id,
    'eventstore.operation': operation,
  };
  // Details come from the caller's input, checked only later by the store: numbers or nothing.
  if (Number.isFinite(details.records)) attributes['eventstore.record.count'] = details.records;
  if (Number.isFinite(details.version)) attributes['eventstore.aggregate.version'] = details.version;
  return run(api, `${operation} ${container.id}`, api.SpanKind.CLIENT, attributes, [], fn, (scope, result, err, metricAttributes) => {
    const done: Attributes = {};
    if (result !== undefined && describe) {
      const found = describe(result);
      if (Number.isFinite(found.records)) done['eventstore.record.count'] = found.records;
      if (Number.isFinite(found.version)) done['eventstore.aggregate.version'] = found.version;
    }
    const name = errorName(err);
    const meter = meterOf(api);
    // A batch's error passes through its save: counted once, where it was first seen.
    const first = err instanceof Error && !counted.has(err);
    if (first) counted.add(err);
    if (name === 'ConcurrencyError') {
      done['eventstore.outcome'] = 'conflict';
      if (first) {
        for (let up = scope.parent; up; up = up.parent) up.conflicts++;
        if (meter.live) meter.conflicts.add(1, metricAttributes);
      }
    } else if (name === 'WriteOutcomeUnknownError') {
      done['eventstore.outcome'] = 'unknown';
      if (first && meter.live) meter.unknownOutcomes.add(1, metricAttributes);
    } else if (err === undefined && (operation === 'save' || operation === 'batch' || operation === 'saveWithTip')) {
      for (let up = scope.parent; up; up = up.parent) up.saves++;
    }
    return done;
  });
}

/**
 * The details of a write of `records` (the caller's input, not yet validated: anything at all), for
 * `traceStore`; never throws.
 */
export function recordsDetails(records: unknown): StoreCallDetails {
  if (!Array.isArray(records)) return {};
  const last: unknown = records[records.length - 1];
  const version = typeof last === 'object' && last !== null ? (last as { version?: unknown }).version : undefined;
  return { records: records.length, version: typeof version === 'number' ? version : undefined };
}

/** Why a command ended, as the `eventstore.outcome` attribute of its span. */
function commandOutcome(scope: Scope, err: unknown): string {
  const name = errorName(err);
  if (name === undefined) {
    if (scope.saves === 0) return 'unchanged';
    return scope.conflicts > 0 ? 'conflict_retried' : 'stored';
  }
  if (name === 'CommandContentionError') return 'contention';
  if (
    name === 'CommandRejectedError' ||
    name === 'CommandValidationError' ||
    name === 'InvalidStateError' ||
    name === 'AggregateNotFoundError' ||
    name === 'AggregateAlreadyExistsError'
  ) {
    return 'rejected';
  }
  if (name === 'WriteOutcomeUnknownError') return 'unknown';
  return 'error';
}

/**
 * Runs `AggregateRepository.apply` in a span `apply <AggregateType>` (kind INTERNAL) over its loads and saves, with
 * the command's name, the aggregate type, the version it ended at, the attempts it took and its outcome
 * (`stored`, `conflict_retried`, `unchanged` for a skip or no events, `rejected`, `contention`, `unknown`,
 * `error`), and the request units of everything below it.
 */
export function traceCommand(aggregateType: string, command: object, fn: () => Promise<number>): Promise<number> {
  const api = otel();
  if (!api) return fn();
  const attributes: Attributes = {
    'db.system.name': 'azure.cosmosdb',
    'eventstore.operation': 'apply',
    'eventstore.aggregate.type': aggregateType,
    'eventstore.command': command.constructor.name,
  };
  return run(api, `apply ${aggregateType}`, api.SpanKind.INTERNAL, attributes, [], fn, (scope, version, err) => ({
    ...(version !== undefined ? { 'eventstore.aggregate.version': version } : {}),
    'eventstore.attempts': scope.conflicts + (errorName(err) === 'CommandContentionError' ? 0 : 1),
    'eventstore.conflicts': scope.conflicts,
    'eventstore.outcome': commandOutcome(scope, err),
  }));
}

/** A page of changes a consumer group hands to its handlers. */
export interface SubscriberPage {
  /** The consumer group (subscriber) name. */
  group: string;
  /** How many events the page holds. */
  events: number;
  /** The feed range read, as `min-max`. */
  range?: string;
  /**
   * W3C `traceparent` values stored with the page's events: the page's span links to each, so a trace
   * shows the commands that wrote what a subscriber handled. Malformed values are ignored.
   */
  traceparents?: readonly string[];
}

/**
 * For the subscriptions runtime: runs the handling of one page in a span `process <group>` (kind CONSUMER)
 * linked to the spans that stored its events, and records its duration and request charge.
 */
export function traceSubscriberPage<T>(page: SubscriberPage, fn: () => Promise<T>): Promise<T> {
  const api = otel();
  if (!api) return fn();
  const attributes: Attributes = {
    'db.system.name': 'azure.cosmosdb',
    'eventstore.operation': 'process',
    'eventstore.subscriber.group': page.group,
    'eventstore.record.count': page.events,
  };
  if (page.range !== undefined) attributes['eventstore.subscriber.range'] = page.range;
  const links: Link[] = [];
  for (const value of new Set(page.traceparents ?? [])) {
    const context = parseTraceparent(api, value);
    if (context) links.push({ context });
  }
  return run(api, `process ${page.group}`, api.SpanKind.CONSUMER, attributes, links, fn, () => ({}));
}

/**
 * For the subscriptions runtime (or an app polling `Subscriptions.lag()`): records a consumer group's lag
 * as the gauges `eventstore.subscriber.pending` and `eventstore.subscriber.behind`, attribute
 * `eventstore.subscriber.group`.
 */
export function recordSubscriberLag(lag: { name: string; estimatedPending: number; behindMs: number }): void {
  const api = otel();
  if (!api) return;
  const meter = meterOf(api);
  if (!meter.live) return;
  const attributes = { 'eventstore.subscriber.group': lag.name };
  meter.pending.record(lag.estimatedPending, attributes);
  meter.behind.record(lag.behindMs, attributes);
}

/** The W3C `traceparent` of the span active now (to store beside an event), or `undefined` when none records. */
let noopTracerProvider: object | undefined;

/** True when an OpenTelemetry SDK records spans: work done only for spans (reading traceparents) can be skipped otherwise. */
export function isTracing(): boolean {
  const api = otel();
  if (!api) return false;
  const provider = api.trace.getTracerProvider() as { getDelegate?: () => object };
  // The global provider is a proxy; without an SDK registered it delegates to the API's no-op provider
  // (one object, looked up once rather than on every page).
  noopTracerProvider ??= new api.ProxyTracerProvider().getDelegate();
  return (provider.getDelegate?.() ?? provider) !== noopTracerProvider;
}

export function currentTraceparent(): string | undefined {
  const api = otel();
  if (!api) return undefined;
  const span = scopes.getStore()?.span ?? api.trace.getActiveSpan();
  const context = span?.spanContext();
  if (!context || !api.isSpanContextValid(context)) return undefined;
  return `00-${context.traceId}-${context.spanId}-${(context.traceFlags & 1).toString(16).padStart(2, '0')}`;
}

function parseTraceparent(api: OtelApiModule, value: string) {
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(value);
  if (!match) return undefined;
  const context = { traceId: match[1], spanId: match[2], traceFlags: parseInt(match[3], 16), isRemote: true };
  return api.isSpanContextValid(context) ? context : undefined;
}

/**
 * A request-level plugin for `CosmosClient` (its `plugins` option, which @azure/cosmos reads but leaves out
 * of its typings): each request's `x-ms-request-charge`, status, sub-status and consistency level are added
 * to the traced call it belongs to. `CosmosModule` installs it on the clients it creates; an app that builds
 * its own client passes it in `plugins`. Outside a traced call it only forwards.
 */
export function cosmosTelemetryPlugin(): PluginConfig {
  return {
    on: 'request',
    plugin: async (context, diagnosticNode, next) => {
      const scope = scopes.getStore();
      if (!scope) return next(context);
      const consistency = context.headers?.['x-ms-consistency-level'];
      if (typeof consistency === 'string') scope.consistency = consistency;
      try {
        const response = await next(context);
        noteRequest(scope, response.code, response.substatus, response.headers);
        return response;
      } catch (err) {
        const failure = err as { code?: unknown; substatus?: unknown; headers?: Record<string, unknown> };
        noteRequest(scope, failure.code, failure.substatus, failure.headers);
        throw err;
      }
    },
  };
}

function noteRequest(scope: Scope, code: unknown, substatus: unknown, headers: Record<string, unknown> | undefined): void {
  const status = typeof code === 'number' ? code : undefined;
  const charge = Number(headers?.['x-ms-request-charge']);
  if (Number.isFinite(charge) && charge > 0) {
    scope.ownCharge += charge;
    for (let up: Scope | undefined = scope; up; up = up.parent) up.requestCharge += charge;
  }
  scope.ownRequests++;
  scope.lastTransient = status === undefined || TRANSIENT.has(status);
  if (scope.lastTransient) scope.transientFailures++;
  const sub = typeof substatus === 'number' ? substatus : Number(headers?.['x-ms-substatus']) || undefined;
  for (let up: Scope | undefined = scope; up?.store; up = up.parent) {
    up.requests++;
    up.status = status;
    up.substatus = sub;
  }
}

type Finish<T> = (scope: Scope, result: T | undefined, err: unknown, metricAttributes: Attributes) => Attributes;

async function run<T>(
  api: OtelApiModule,
  name: string,
  kind: number,
  attributes: Attributes,
  links: Link[],
  fn: () => Promise<T>,
  finish: Finish<T>,
): Promise<T> {
  const meter = meterOf(api);
  const parent = scopes.getStore();
  const parentContext = parent?.span ? api.trace.setSpan(api.context.active(), parent.span) : api.context.active();
  const span = tracerOf(api).startSpan(name, { kind, attributes, links }, parentContext);
  const tracing = span.isRecording();
  // Nothing records: no scope, no clock, no allocation beyond the API's own no-op span.
  if (!tracing && !meter.live) return fn();
  const scope = newScope(kind === api.SpanKind.CLIENT, parent, tracing ? span : undefined);
  const started = performance.now();
  let result: T | undefined;
  let failure: unknown;
  let failed = false;
  try {
    result = await scopes.run(scope, () => (tracing ? api.context.with(api.trace.setSpan(parentContext, span), fn) : fn()));
    return result;
  } catch (err) {
    failure = err;
    failed = true;
    throw err;
  } finally {
    const metricAttributes: Attributes = {};
    for (const key of ['db.system.name', 'db.operation.name', 'db.namespace', 'db.collection.name', 'eventstore.operation']) {
      if (attributes[key] !== undefined) metricAttributes[key] = attributes[key];
    }
    if (scope.status !== undefined) metricAttributes['db.response.status_code'] = String(scope.status);
    const errorType = failed ? (errorName(failure) ?? 'Error') : undefined;
    if (errorType) metricAttributes['error.type'] = errorType;
    const extra = finish(scope, result, failed ? failure : undefined, metricAttributes);
    // Failed requests followed by another: the last one, failed, ended the call rather than being retried.
    const ownRetries = scope.transientFailures - (scope.lastTransient ? 1 : 0);
    const retries = ownRetries + scope.childRetries;
    if (parent) parent.childRetries += retries;
    if (meter.live) {
      meter.duration.record((performance.now() - started) / 1000, metricAttributes);
      // Each request's charge is recorded once, by the innermost call that made it: a sum is exact.
      if (scope.ownRequests > 0) meter.requestCharge.record(scope.ownCharge, metricAttributes);
      if (ownRetries > 0) meter.retries.add(ownRetries, metricAttributes);
    }
    if (tracing) {
      span.setAttributes(extra);
      span.setAttribute('azure.cosmosdb.operation.request_charge', scope.requestCharge);
      if (scope.status !== undefined) span.setAttribute('db.response.status_code', String(scope.status));
      if (scope.substatus !== undefined) span.setAttribute('azure.cosmosdb.response.sub_status_code', scope.substatus);
      if (scope.consistency !== undefined) span.setAttribute('azure.cosmosdb.consistency.level', scope.consistency);
      if (scope.requests > 0) span.setAttribute('eventstore.requests', scope.requests);
      if (retries > 0) span.setAttribute('eventstore.retries', retries);
      if (errorType) {
        span.setAttribute('error.type', errorType);
        // The error's class and status only: its message may quote ids or values.
        span.setStatus({ code: api.SpanStatusCode.ERROR, message: errorType });
      }
      span.end();
    }
  }
}

function errorName(err: unknown): string | undefined {
  if (err === undefined) return undefined;
  return err instanceof Error ? err.name : typeof err;
}
