import type { Logger } from '@nestjs/common';
import type { FeedEvent } from './change-feed-reader.js';
import type { HandlerDefinition } from './subscriptions.decorators.js';
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
  /** Records a dead letter durably; rejects when it could not (the page then stays unfinished). */
  deadLetter(letter: Omit<DeadLetter, 'subscriber' | 'instanceId'>): Promise<void>;
}

/** Counters of one subscriber on this instance. */
export interface SubscriberStats {
  handled: number;
  deadLettered: number;
  lastError?: string;
}

/**
 * Hands events to one subscriber's handlers: each aggregate's events in order, handlers of one event one after
 * the other, a failing handler retried with backoff and then dead-lettered (and skipped or stopped at, per
 * policy). Shared by the readers of every feed range this instance holds for the subscriber.
 */
export class SubscriberRuntime {
  readonly stats: SubscriberStats = { handled: 0, deadLettered: 0 };

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
    const pageFailed = new AbortController();
    const laneControl: DeliveryControl = {
      ...control,
      mayContinue: () => !failure && control.mayContinue(),
      signal: AbortSignal.any([control.signal, pageFailed.signal]),
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
    await Promise.allSettled(Array.from({ length: Math.min(this.subscriber.concurrency, lanes.length) }, lane));
    if (failure) throw failure.error;
    return outcome;
  }

  private async deliver(feedEvent: FeedEvent, control: DeliveryControl): Promise<PageOutcome> {
    if (!control.mayContinue()) return 'interrupted';
    const { serializer } = this.subscriber;
    let decoded: unknown;
    if (serializer) {
      try {
        decoded = serializer.deserialize(feedEvent.data);
      } catch (err) {
        // Decoding is deterministic: retrying it cannot help.
        return this.giveUp(feedEvent, '(deserialize)', err, 1, control);
      }
    }
    for (const handler of this.subscriber.handlers) {
      if (!matches(handler.filter, feedEvent, decoded)) continue;
      const name = `${this.subscriber.className}.${String(handler.method)}`;
      const method = (this.subscriber.instance as Record<string | symbol, (e: SubscribedEvent) => unknown>)[handler.method];
      const { attempts, initialDelayMs, maxDelayMs } = this.subscriber.retry;
      for (let attempt = 1; ; attempt++) {
        try {
          const event: SubscribedEvent = { ...feedEvent, attempt, signal: control.signal };
          if (serializer) event.event = decoded;
          await method.call(this.subscriber.instance, event);
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
    this.stats.handled++;
    return 'handled';
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
    this.logger.error(
      `${this.subscriber.name}: ${handler} failed on ${event.aggregateId}@${event.version} after ${attempts} attempt(s): ` +
        `${describe(err)}; ${policy === 'stop' ? 'stopping the subscriber' : 'recorded as a dead letter, moving on'}`,
    );
    await control.deadLetter({
      handler,
      aggregateId: event.aggregateId,
      version: event.version,
      data: event.data,
      error: { name: err instanceof Error ? err.name : typeof err, message: describe(err) },
      attempts,
      failedAt: new Date(),
      policy,
    });
    this.stats.deadLettered++;
    return policy === 'stop' ? 'stopped' : 'handled';
  }
}

function matches(filter: EventFilter, event: FeedEvent, decoded: unknown): boolean {
  if (filter.aggregateIdPrefix !== undefined && !event.aggregateId.startsWith(filter.aggregateIdPrefix)) return false;
  if (filter.types) {
    const type = decoded !== null && typeof decoded === 'object' ? (decoded as { type?: unknown }).type : undefined;
    if (typeof type !== 'string' || !filter.types.includes(type)) return false;
  }
  return true;
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
