import type { Logger } from '@nestjs/common';
import { STREAM_DELETED_TYPE } from '../event-store/index.js';
import { runInHandlerContext, SNAPSHOT_EVENT_TYPE, type EventClass } from '../event-sourcing/index.js';
import type { FeedEvent } from './change-feed-reader.js';
import type { ParkedAggregate, SettledEvent } from './lease-store.js';
import type { HandlerDefinition } from './subscriptions.decorators.js';
import { DeadLetterReplayError } from './subscriptions.errors.js';
import type {
  DeadLetter,
  EventDeserializer,
  EventFilter,
  FailurePolicy,
  OnSubscriberRebuild,
  RetryOptions,
  SubscribedEvent,
} from './subscriptions.interfaces.js';
import { sleep } from './sleep.js';

/** A subscriber's settings once the module defaults are applied. */
export interface ResolvedSubscriber {
  name: string;
  className: string;
  instance: object;
  handlers: HandlerDefinition[];
  serializer?: EventDeserializer;
  retry: Required<RetryOptions>;
  onFailure: FailurePolicy;
  maxItemCount: number;
  concurrency: number;
}

/** How delivering a page ended: all handled (dead letters included), stopped by policy, or interrupted. */
export type PageOutcome = 'handled' | 'stopped' | 'interrupted';

/** What a page delivery may look at while it runs. */
export interface DeliveryControl {
  /** False once the range must be let go at once (lease lost or expired): no further event starts. */
  mayContinue(): boolean;
  /** Aborted when the reader is asked to stop: retry waits end early and the page is left unfinished. */
  signal: AbortSignal;
  /** Records a dead letter durably and answers its id; rejects when it could not (the page then stays unfinished). */
  deadLetter(letter: Omit<DeadLetter, 'id' | 'subscriber' | 'instanceId'>): Promise<string | void>;
  /**
   * Parking (policy `dead-letter`): an aggregate whose event a handler gave up on is parked, and its later
   * events wait (recorded durably on Cosmos DB) instead of being delivered out of order. Without it, a dead
   * letter is passed over and the aggregate's later events are delivered.
   */
  parking?: Parking;
  /** True when `handler`'s failure on the event was settled by hand (replayed or discarded): pass it over. */
  isSettled?(event: SettledEvent): boolean;
}

/** What the reader of a feed range keeps of its parked aggregates. */
export interface Parking {
  isParked(aggregateId: string): boolean;
  /** Records an event of a parked aggregate durably (before the checkpoint passes it). */
  park(event: FeedEvent): Promise<void>;
  /** Parks an aggregate behind a dead letter. */
  parkAggregate(parked: ParkedAggregate): void;
}

/** Handler name of the failures of the serializer, in dead letters. */
export const DESERIALIZE_HANDLER = '(deserialize)';

/** Counters of one subscriber on this instance. */
export interface SubscriberStats {
  handled: number;
  /** Events that waited behind a parked aggregate's dead letter (counted again when handled). */
  parked: number;
  /** Events no handler's stream filter admits (or only snapshots), passed over undecoded or unhandled. */
  passedOver: number;
  deadLettered: number;
  lastError?: string;
}

/**
 * Hands events to one subscriber's handlers: each aggregate's events in order, handlers of one event one after
 * the other, a failing handler retried with backoff and then dead-lettered (and skipped or stopped at, per
 * policy). Shared by the readers of every feed range this instance holds for the subscriber.
 */
export class SubscriberRuntime {
  readonly stats: SubscriberStats = { handled: 0, parked: 0, passedOver: 0, deadLettered: 0 };
  /** Each event of the page in hand decoded once, whoever asks first (the page's span or its delivery). */
  private readonly decodedEvents = new WeakMap<FeedEvent, { value: Decoded | undefined } | { failed: unknown }>();

  constructor(
    readonly subscriber: ResolvedSubscriber,
    private readonly logger: Logger,
  ) {}

  get rebuildHook(): OnSubscriberRebuild['onRebuild'] | undefined {
    const hook = (this.subscriber.instance as Partial<OnSubscriberRebuild>).onRebuild;
    return typeof hook === 'function' ? hook.bind(this.subscriber.instance) : undefined;
  }

  /** Delivers a page; `handled` means every event was handled or dead-lettered, so the page may be checkpointed. */
  async deliverPage(events: readonly FeedEvent[], control: DeliveryControl): Promise<PageOutcome> {
    const lanes = this.subscriber.concurrency === 1 ? [events] : byAggregate(events);
    let outcome: PageOutcome = 'handled';
    const stop = (result: PageOutcome) => {
      if (outcome === 'handled' || result === 'stopped') outcome = result;
    };
    // A lane that threw (a dead letter that could not be written) fails the page: the other lanes take no
    // further event, and the page is given up only once every lane has settled, so the reader's retry of the
    // page never runs beside lanes still delivering its events.
    let failure: { error: unknown } | undefined;
    // Once the page failed, the other lanes' retry waits end too, and their handlers are told (event.signal).
    // Linked by hand, with the listener removed after the page: on Node 20, AbortSignal.any over the reader's
    // long-lived signal keeps every page's composite signal alive for as long as the reader runs.
    const pageFailed = new AbortController();
    const follow = () => pageFailed.abort(control.signal.reason);
    if (control.signal.aborted) follow();
    else control.signal.addEventListener('abort', follow, { once: true });
    const laneControl: DeliveryControl = {
      ...control,
      mayContinue: () => !failure && control.mayContinue(),
      signal: pageFailed.signal,
    };
    let next = 0;
    const lane = async () => {
      try {
        while (outcome === 'handled' && !failure && next < lanes.length) {
          const own = lanes[next++];
          for (const event of own) {
            const result = await this.deliver(event, laneControl);
            if (result !== 'handled') return stop(result);
            if (outcome !== 'handled' || failure) return;
          }
        }
      } catch (error) {
        failure ??= { error };
        pageFailed.abort();
      }
    };
    try {
      await Promise.allSettled(Array.from({ length: Math.min(this.subscriber.concurrency, lanes.length) }, lane));
    } finally {
      control.signal.removeEventListener('abort', follow);
    }
    if (failure) throw failure.error;
    return outcome;
  }

  private async deliver(feedEvent: FeedEvent, control: DeliveryControl): Promise<PageOutcome> {
    if (!control.mayContinue()) return 'interrupted';
    if (control.parking?.isParked(feedEvent.aggregateId)) {
      // Behind a dead letter of the same aggregate: waits, in order, until that letter is settled.
      await control.parking.park(feedEvent);
      this.stats.parked++;
      return 'handled';
    }
    // What the stored document decides comes first: an event no handler's stream takes is never decoded, so a
    // record of another writer (raw bytes, protobuf) cannot fail, stop or be dead-lettered by this subscriber.
    const candidates = this.subscriber.handlers.filter((h) => admitsStream(h.filter, feedEvent));
    if (candidates.length === 0 || this.isSettled(control, feedEvent, DESERIALIZE_HANDLER)) {
      this.stats.passedOver++;
      return 'handled';
    }
    let decoded: Decoded | undefined;
    try {
      decoded = this.decode(feedEvent);
    } catch (err) {
      // Decoding is deterministic: retrying it cannot help.
      return this.giveUp(feedEvent, DESERIALIZE_HANDLER, err, 1, control);
    }
    let delivered = false;
    for (const handler of candidates) {
      if (!admitsDecoded(handler.filter, decoded)) continue;
      const name = this.handlerName(handler);
      if (this.isSettled(control, feedEvent, name)) continue;
      delivered = true;
      const { attempts, initialDelayMs, maxDelayMs } = this.subscriber.retry;
      for (let attempt = 1; ; attempt++) {
        try {
          await this.call(handler, feedEvent, decoded, attempt, control.signal);
          break;
        } catch (err) {
          this.stats.lastError = `${name} on ${feedEvent.aggregateId}@${feedEvent.version}: ${describe(err)}`;
          // Asked to stop (or the lease is gone): a failure now may be the handler giving up on that; not a
          // reason to dead-letter the event. The page stays unfinished and is read again.
          if (control.signal.aborted || !control.mayContinue()) return 'interrupted';
          if (attempt >= attempts) {
            const outcome = await this.giveUp(feedEvent, name, err, attempt, control);
            if (outcome !== 'handled') return outcome;
            break;
          }
          this.logger.warn(`${this.stats.lastError} (attempt ${attempt} of ${attempts}, retrying)`);
          await sleep(Math.min(maxDelayMs, initialDelayMs * 2 ** (attempt - 1)), control.signal);
          if (control.signal.aborted || !control.mayContinue()) return 'interrupted';
        }
      }
    }
    if (delivered) this.stats.handled++;
    else this.stats.passedOver++;
    return 'handled';
  }

  /**
   * Hands a dead letter's event once more to the handler that failed on it (every handler that takes it, for
   * a failure of the serializer); rejects with `DeadLetterReplayError` when it fails again.
   */
  async replay(letter: DeadLetter, signal?: AbortSignal): Promise<void> {
    const feedEvent: FeedEvent = {
      aggregateId: letter.aggregateId,
      version: letter.version,
      data: letter.data,
      committedAt: letter.committedAt ?? letter.failedAt,
    };
    const fail = (handler: string, err: unknown) => new DeadLetterReplayError(this.subscriber.name, letter.id, handler, err);
    let decoded: Decoded | undefined;
    try {
      decoded = this.decode(feedEvent);
    } catch (err) {
      throw fail(DESERIALIZE_HANDLER, err);
    }
    const handlers = this.subscriber.handlers.filter(
      (h) =>
        admitsStream(h.filter, feedEvent) &&
        admitsDecoded(h.filter, decoded) &&
        (letter.handler === DESERIALIZE_HANDLER || this.handlerName(h) === letter.handler),
    );
    if (letter.handler !== DESERIALIZE_HANDLER && handlers.length === 0) {
      throw fail(letter.handler, new Error(`${this.subscriber.className} has no handler ${letter.handler} that takes this event (renamed or its filter changed?)`));
    }
    for (const handler of handlers) {
      try {
        await this.call(handler, feedEvent, decoded, letter.attempts + 1, signal);
      } catch (err) {
        throw fail(this.handlerName(handler), err);
      }
    }
  }

  private handlerName(handler: HandlerDefinition): string {
    return `${this.subscriber.className}.${String(handler.method)}`;
  }

  private isSettled(control: DeliveryControl, event: FeedEvent, handler: string): boolean {
    return control.isSettled?.({ aggregateId: event.aggregateId, version: event.version, handler }) ?? false;
  }

  /**
   * The W3C `traceparent`s the page's events were stored under (their envelopes' headers), for the page's span
   * to link to. Only events some handler's stream takes are decoded, once: delivery reuses the decoding. An
   * event the serializer cannot read is the delivery's business, not the span's.
   */
  traceparentsOf(batch: readonly FeedEvent[]): string[] {
    const found: string[] = [];
    for (const event of batch) {
      if (!this.subscriber.handlers.some((h) => admitsStream(h.filter, event))) continue;
      try {
        const headers = envelopeField(this.decode(event)?.value, 'headers') as Record<string, unknown> | undefined;
        if (typeof headers?.traceparent === 'string') found.push(headers.traceparent);
      } catch {
        // Left to `deliver`, which dead-letters it under the serializer's name.
      }
    }
    return found;
  }

  /** The event decoded by the subscriber's serializer, with its type and whether it is a snapshot; undefined without one. */
  private decode(event: FeedEvent): Decoded | undefined {
    let decoded = this.decodedEvents.get(event);
    if (!decoded) {
      // A failure is remembered too: decoding is deterministic.
      try {
        decoded = { value: this.decodeNow(event) };
      } catch (err) {
        decoded = { failed: err };
      }
      this.decodedEvents.set(event, decoded);
    }
    if ('failed' in decoded) throw decoded.failed;
    return decoded.value;
  }

  private decodeNow(event: FeedEvent): Decoded | undefined {
    const { serializer } = this.subscriber;
    if (!serializer) return undefined;
    // An erasure's tombstone has no payload to decode: handlers see its type (`types: ['$stream-deleted']`).
    if (event.type === STREAM_DELETED_TYPE) return { value: undefined, type: STREAM_DELETED_TYPE, snapshot: false, payload: () => ({}) };
    const value = serializer.deserialize(event.data);
    const type = serializer.typeOf ? serializer.typeOf(value) : envelopeField(value, 'type');
    return {
      value,
      type: typeof type === 'string' ? type : undefined,
      snapshot: serializer.isSnapshot ? serializer.isSnapshot(value) === true : type === SNAPSHOT_EVENT_TYPE,
      payload: () => (serializer.payloadOf ? serializer.payloadOf(value) : envelopeField(value, 'payload')),
    };
  }

  private async call(handler: HandlerDefinition, feedEvent: FeedEvent, decoded: Decoded | undefined, attempt: number, signal?: AbortSignal): Promise<void> {
    const method = (this.subscriber.instance as Record<string | symbol, (...args: unknown[]) => unknown>)[handler.method];
    const event: SubscribedEvent = { ...streamParts(feedEvent.aggregateId), version: feedEvent.version, data: feedEvent.data, committedAt: feedEvent.committedAt, attempt };
    if (signal) event.signal = signal;
    if (decoded) {
      event.event = decoded.value;
      if (decoded.type !== undefined) event.type = decoded.type;
      for (const field of ['eventId', 'correlationId', 'causationId'] as const) {
        const value = envelopeField(decoded.value, field);
        if (typeof value === 'string') event[field] = value;
      }
    }
    // Commands the handler issues continue the handled event's story: its correlation id, and its id as their causation.
    const handled = { aggregateId: event.streamId, version: event.version, event: decoded?.value };
    await runInHandlerContext(handled, async () => {
      if (handler.eventClasses) {
        // `admitsDecoded` made sure the type is one of the handler's classes.
        const eventClass = handler.eventClasses.get(decoded!.type!)!;
        await method.call(this.subscriber.instance, typedEvent(eventClass, decoded!.payload()), event);
      } else {
        await method.call(this.subscriber.instance, event);
      }
    });
  }

  /** The last attempt failed: record it, then move on or stop, per policy. */
  private async giveUp(
    event: FeedEvent,
    handler: string,
    err: unknown,
    attempts: number,
    control: DeliveryControl,
  ): Promise<PageOutcome> {
    const policy = this.subscriber.onFailure;
    // Also for the serializer's failures: a stopped group shows this as its reason.
    this.stats.lastError = `${handler} on ${event.aggregateId}@${event.version}: ${describe(err)}`;
    const parking = policy === 'dead-letter' ? control.parking : undefined;
    this.logger.error(
      `${this.subscriber.name}: ${handler} failed on ${event.aggregateId}@${event.version} after ${attempts} attempt(s): ` +
        `${describe(err)}; ${
          policy === 'stop'
            ? 'stopping the subscriber'
            : parking
              ? `recorded as a dead letter; ${event.aggregateId} is parked until it is replayed or discarded`
              : 'recorded as a dead letter, moving on'
        }`,
    );
    const letterId = await control.deadLetter({
      handler,
      aggregateId: event.aggregateId,
      version: event.version,
      data: event.data,
      error: { name: err instanceof Error ? err.name : typeof err, message: describe(err) },
      attempts,
      failedAt: new Date(),
      policy,
      committedAt: event.committedAt,
    });
    this.stats.deadLettered++;
    if (parking && typeof letterId === 'string') {
      parking.parkAggregate({ aggregateId: event.aggregateId, version: event.version, handler, letterId });
    }
    return policy === 'stop' ? 'stopped' : 'handled';
  }
}

/** A decoded event, as the filters and handlers need it. */
interface Decoded {
  value: unknown;
  type?: string;
  snapshot: boolean;
  payload(): unknown;
}

/** A stream id's parts as repositories use them: `Order/42` is type `Order`, id `42`. */
export function streamParts(streamId: string): Pick<SubscribedEvent, 'streamId' | 'aggregateType' | 'aggregateId'> {
  const slash = streamId.indexOf('/');
  if (slash <= 0 || slash === streamId.length - 1) return { streamId, aggregateId: streamId };
  return { streamId, aggregateType: streamId.slice(0, slash), aggregateId: streamId.slice(slash + 1) };
}

/** What the stored document decides: the stream. */
function admitsStream(filter: EventFilter, event: FeedEvent): boolean {
  return filter.aggregateIdPrefix === undefined || event.aggregateId.startsWith(filter.aggregateIdPrefix);
}

/** What needs the decoded event: its type, and whether it is a snapshot (without a serializer, neither is known). */
function admitsDecoded(filter: EventFilter, decoded: Decoded | undefined): boolean {
  if (decoded?.snapshot && !filter.snapshots) return false;
  if (filter.types) return decoded?.type !== undefined && filter.types.includes(decoded.type);
  return true;
}

function envelopeField(value: unknown, field: 'type' | 'payload' | 'eventId' | 'correlationId' | 'causationId' | 'headers'): unknown {
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[field] : undefined;
}

/** The event as its class's instance: already one, or its stored fields on the class's prototype (as `@On` gets it). */
function typedEvent(eventClass: EventClass, payload: unknown): object {
  if (payload instanceof eventClass) return payload;
  const event: object = Object.create(eventClass.prototype as object) as object;
  return payload !== null && typeof payload === 'object' ? Object.assign(event, payload) : event;
}

/** Each aggregate's events, in order; aggregates in order of first appearance. */
function byAggregate(events: readonly FeedEvent[]): FeedEvent[][] {
  const lanes = new Map<string, FeedEvent[]>();
  for (const event of events) {
    const lane = lanes.get(event.aggregateId);
    if (lane) lane.push(event);
    else lanes.set(event.aggregateId, [event]);
  }
  return [...lanes.values()];
}

export function describe(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (err && typeof err === 'object' && 'message' in err) return String((err as { message: unknown }).message);
  return String(err);
}
