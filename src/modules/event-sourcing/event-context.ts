import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { ValidationError } from '../event-store/index.js';

/**
 * Where the events of the commands run inside `runWithEventContext` come from: stamped on every event the
 * repository stores (the JSON envelope's `correlationId`, `causationId`, `headers`).
 */
export interface EventMetadataContext {
  /** The id shared by every event of one story (an HTTP request and all it causes downstream). */
  correlationId: string;
  /** The id of what caused these events: the handled event's `eventId`; default: the correlation id. */
  causationId?: string;
  /** Free-form string headers stored with each event (a tenant, a client name): at most 32, names up to 100 characters, values up to 1000. */
  headers?: Readonly<Record<string, string>>;
}

/** The header whose value becomes the correlation id of a request's events. */
export const CORRELATION_ID_HEADER = 'x-correlation-id';
/** The longest correlation or causation id accepted. */
export const MAX_CORRELATION_ID_LENGTH = 128;
/** Bounds of an event context's `headers`: every event of its commands stores them. */
export const MAX_EVENT_HEADERS = 32;
export const MAX_EVENT_HEADER_NAME_LENGTH = 100;
export const MAX_EVENT_HEADER_VALUE_LENGTH = 1000;

const storage = new AsyncLocalStorage<Readonly<EventMetadataContext>>();
// Visible ASCII only: ids land in logs and headers, where control characters and spaces would forge lines.
const PRINTABLE_ID = new RegExp(`^[\\x21-\\x7e]{1,${MAX_CORRELATION_ID_LENGTH}}$`);
// W3C Trace Context: version-traceid-parentid-flags, lower-case hex; version ff and all-zero ids are invalid.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** True for a usable correlation or causation id: 1 to 128 visible ASCII characters. */
export function isValidCorrelationId(value: unknown): value is string {
  return typeof value === 'string' && PRINTABLE_ID.test(value);
}

function checkContext(context: EventMetadataContext): Readonly<EventMetadataContext> {
  if (context === null || typeof context !== 'object') throw new ValidationError('eventContext', 'must be an object { correlationId, causationId?, headers? }');
  const { correlationId, causationId, headers } = context;
  if (!isValidCorrelationId(correlationId)) {
    throw new ValidationError('correlationId', `must be 1 to ${MAX_CORRELATION_ID_LENGTH} visible ASCII characters`);
  }
  if (causationId !== undefined && !isValidCorrelationId(causationId)) {
    throw new ValidationError('causationId', `must be 1 to ${MAX_CORRELATION_ID_LENGTH} visible ASCII characters`);
  }
  const result: EventMetadataContext = { correlationId };
  if (causationId !== undefined) result.causationId = causationId;
  if (headers !== undefined) {
    if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) throw new ValidationError('headers', 'must be an object of strings');
    const entries = Object.entries(headers);
    if (entries.length > MAX_EVENT_HEADERS) throw new ValidationError('headers', `must hold at most ${MAX_EVENT_HEADERS} headers`);
    for (const [name, value] of entries) {
      if (name.length === 0 || name.length > MAX_EVENT_HEADER_NAME_LENGTH) {
        throw new ValidationError('headers', `names must be 1 to ${MAX_EVENT_HEADER_NAME_LENGTH} characters, got ${JSON.stringify(name.slice(0, 120))}`);
      }
      if (typeof value !== 'string') throw new ValidationError(`headers.${name}`, 'must be a string');
      if (value.length > MAX_EVENT_HEADER_VALUE_LENGTH) throw new ValidationError(`headers.${name}`, `must be at most ${MAX_EVENT_HEADER_VALUE_LENGTH} characters`);
    }
    result.headers = Object.freeze({ ...headers });
  }
  return Object.freeze(result);
}

/**
 * Runs `fn` with an event context: every event a repository stores inside it (also after `await`s) carries
 * its correlation id, causation id and headers. Contexts nest; the innermost wins.
 *
 * @example
 * await runWithEventContext({ correlationId: 'import-2026-12-05' }, () => orders.apply(new PlaceOrder('o-1', 'c-1')));
 */
export function runWithEventContext<T>(context: EventMetadataContext, fn: () => T): T {
  return storage.run(checkContext(context), fn);
}

/** The event context `fn` runs in (`runWithEventContext`), or undefined outside any. */
export function currentEventContext(): Readonly<EventMetadataContext> | undefined {
  return storage.getStore();
}

/** What `runInHandlerContext` reads of a handled event: a `SubscribedEvent` (its decoded `event`) or an envelope. */
export interface HandledEventLike {
  aggregateId?: string;
  version?: number;
  event?: unknown;
  eventId?: unknown;
  correlationId?: unknown;
}

/**
 * Runs a subscriber's handler so that the commands it issues continue the handled event's story: their events
 * get the handled event's correlation id, and its `eventId` as their causation id, with nothing passed by the
 * handler. An event stored before metadata existed has neither: its stream and version (`Order/o-1@3`) stand
 * for its id, and that is also the correlation id. The subscriptions runtime calls it around each handler.
 */
export function runInHandlerContext<T>(handled: HandledEventLike, fn: () => T): T {
  const envelope = (handled.event !== null && typeof handled.event === 'object' ? handled.event : handled) as HandledEventLike;
  const stand = handled.aggregateId !== undefined && handled.version !== undefined ? `${handled.aggregateId}@${handled.version}` : undefined;
  const eventId = isValidCorrelationId(envelope.eventId) ? envelope.eventId : stand && isValidCorrelationId(stand) ? stand : randomUUID();
  const correlationId = isValidCorrelationId(envelope.correlationId) ? envelope.correlationId : eventId;
  return storage.run(Object.freeze({ correlationId, causationId: eventId }), fn);
}

function headerValue(headers: unknown, name: string): string | undefined {
  if (headers === null || typeof headers !== 'object') return undefined;
  const value = (headers as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * The correlation id of an HTTP request: its `x-correlation-id` header when valid (1 to 128 visible ASCII
 * characters), else the trace id of a valid W3C `traceparent`, else a fresh UUID. An invalid header is
 * passed over, never stored.
 */
export function correlationIdOf(headers: unknown): string {
  const given = headerValue(headers, CORRELATION_ID_HEADER);
  if (isValidCorrelationId(given)) return given;
  const match = TRACEPARENT.exec(headerValue(headers, 'traceparent') ?? '');
  if (match && match[1] !== 'ff' && !/^0+$/.test(match[2]) && !/^0+$/.test(match[3]) && (match[1] !== '00' || match[5] === undefined)) return match[2];
  return randomUUID();
}

/**
 * Runs each HTTP request's handler in an event context whose correlation id comes from the request
 * (`correlationIdOf`: `x-correlation-id`, else the `traceparent` trace id, else a fresh UUID), and answers it
 * in the `x-correlation-id` response header. Express and Fastify alike.
 *
 * @example
 * app.useGlobalInterceptors(new CorrelationIdInterceptor());
 * // or on a controller: @UseInterceptors(CorrelationIdInterceptor)
 */
@Injectable()
export class CorrelationIdInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): ReturnType<CallHandler['handle']> {
    if (context.getType() !== 'http') return next.handle();
    const http = context.switchToHttp();
    const correlationId = correlationIdOf((http.getRequest<{ headers?: unknown }>() ?? {}).headers);
    const response = http.getResponse<{ setHeader?: (name: string, value: string) => void; header?: (name: string, value: string) => void }>();
    if (typeof response?.setHeader === 'function') response.setHeader(CORRELATION_ID_HEADER, correlationId);
    else if (typeof response?.header === 'function') response.header(CORRELATION_ID_HEADER, correlationId);
    // Nest binds the handler's async scope when handle() is called, so calling it inside run() is enough.
    return storage.run(Object.freeze({ correlationId }), () => next.handle());
  }
}
