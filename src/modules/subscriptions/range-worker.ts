import type { Logger } from '@nestjs/common';
import type { ChangeFeedPullModelIterator, Container, FeedRange } from '@azure/cosmos';
import { isTracing, traceSubscriberPage } from '../telemetry/index.js';
import { changeFeedIterator, eventsOfPage } from './change-feed-reader.js';
import { pageFault } from './sdk-adapter.js';
import type { OwnedLease } from './owned-lease.js';
import type { LeaseStore, ParkedAggregate, SettledEvent } from './lease-store.js';
import { describe, type DeliveryControl, type PageOutcome, type Parking, type SubscriberRuntime } from './subscriber-runtime.js';
import { isLeaseLost } from './subscriptions.errors.js';
import { sleep } from './sleep.js';

/** Longest wait between two attempts after Cosmos DB failed to answer. */
const MAX_ERROR_DELAY_MS = 10_000;

export interface RangeWorkerOptions {
  events: Container;
  range: FeedRange;
  rangeName: string;
  lease: OwnedLease;
  store: LeaseStore;
  runtime: SubscriberRuntime;
  instanceId: string;
  pollIntervalMs: number;
  logger: Logger;
  /** Called when a handler failed for good under policy `stop`: halts the group everywhere. */
  onStopped(reason: string): Promise<void>;
  /** True when a handler's failure on an event was settled by hand: the handler passes it over. */
  isSettled(event: SettledEvent): boolean;
}

/**
 * Reads one feed range of one subscriber while this instance holds its lease: a page at a time, handing the
 * events to the subscriber, then checkpointing the page's continuation. The checkpoint never passes an event
 * that was not handled (or dead-lettered): a page left unfinished is read again from the last checkpoint.
 */
export class RangeWorker {
  private readonly stopRequest = new AbortController();
  private readonly abandonRequest = new AbortController();
  private running?: Promise<void>;
  /** Aggregates of this range parked behind a dead letter (see `LeaseDocument.parked`). */
  private readonly parked: Map<string, ParkedAggregate>;
  /** The parked aggregates changed since the last checkpoint. */
  private parkedChanged = false;

  constructor(private readonly options: RangeWorkerOptions) {
    this.parked = new Map((options.lease.document.parked ?? []).map((p) => [p.aggregateId, p]));
  }

  /** The aggregates this reader holds parked. */
  get parkedAggregates(): ParkedAggregate[] {
    return [...this.parked.values()];
  }

  private readonly parking: Parking = {
    isParked: (aggregateId) => this.parked.has(aggregateId),
    park: (event) => this.options.store.park(event),
    parkAggregate: (parked) => {
      this.parked.set(parked.aggregateId, parked);
      this.parkedChanged = true;
    },
  };

  private deliveryControl(signal: AbortSignal): DeliveryControl {
    const lease = this.options.lease;
    return {
      mayContinue: () => !this.abandoned && lease.isValid(),
      signal,
      deadLetter: (letter) => this.options.store.writeDeadLetter({ ...letter, instanceId: this.options.instanceId }),
      isSettled: this.options.isSettled,
      parking: this.parking,
    };
  }

  /**
   * Delivers the waiting events of every parked aggregate whose dead letter was settled (replayed or
   * discarded), in version order, then lets the aggregate go. An event that fails for good again parks the
   * aggregate again behind its new letter, the events after it still waiting. False when interrupted.
   */
  private async drainSettled(signal: AbortSignal): Promise<PageOutcome> {
    const { store, runtime, isSettled } = this.options;
    for (const parked of [...this.parked.values()]) {
      if (signal.aborted) return 'interrupted';
      if (!isSettled({ aggregateId: parked.aggregateId, version: parked.version, handler: parked.handler })) continue;
      const waiting = await store.parkedEvents(parked.aggregateId);
      this.parked.delete(parked.aggregateId);
      const outcome = await runtime.deliverPage(waiting, this.deliveryControl(signal));
      if (outcome !== 'handled') {
        // Not done: it stays parked where it was; what was handled of it may be handed out again.
        if (!this.parked.has(parked.aggregateId)) this.parked.set(parked.aggregateId, parked);
        return outcome;
      }
      this.parkedChanged = true;
      const again = this.parked.get(parked.aggregateId);
      for (const event of waiting) {
        if (again && event.version > again.version) continue;
        await store.unpark(event.aggregateId, event.id);
      }
      this.options.logger.log(
        `${runtime.subscriber.name}@${this.options.instanceId}: ${parked.aggregateId} ${again ? `parked again at ${again.version}` : 'released'} ` +
          `after its dead letter was settled (${waiting.length} waiting event(s))`,
      );
    }
    return 'handled';
  }

  get lease(): OwnedLease {
    return this.options.lease;
  }

  get stopping(): boolean {
    return this.stopRequest.signal.aborted;
  }

  /** Resolves when the reader has ended (and let go of its lease, when it still held it). */
  get done(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  start(): void {
    this.running ??= this.run();
  }

  /**
   * Graceful: no new page is read, the page in hand is finished (retry waits are cut short, leaving it
   * unfinished), its checkpoint written and the lease released.
   */
  stop(): Promise<void> {
    this.stopRequest.abort();
    return this.done;
  }

  /** The lease is gone: stop at once, write nothing, leave the lease alone. */
  abandon(): void {
    this.abandonRequest.abort();
    this.stopRequest.abort();
  }

  private get abandoned(): boolean {
    return this.abandonRequest.signal.aborted;
  }

  private async run(): Promise<void> {
    const { lease, runtime, pollIntervalMs, logger, rangeName } = this.options;
    const name = `${runtime.subscriber.name}@${this.options.instanceId}`;
    const signal = this.stopRequest.signal;
    // The position every event before which is handled: the checkpoint, or a handled page not yet checkpointed.
    let position = lease.continuation;
    let iterator = this.iterator(position);
    let errorDelay = pollIntervalMs;
    const failed = async (what: string, err: unknown) => {
      runtime.stats.lastError = `${what} (${rangeName}): ${describe(err)}`;
      logger.warn(`${name}: ${runtime.stats.lastError}`);
      await sleep(errorDelay, signal);
      errorDelay = Math.min(MAX_ERROR_DELAY_MS, errorDelay * 2);
      // The iterator may have moved past what was handled: start over from the handled position.
      iterator = this.iterator(position);
    };
    try {
      while (!signal.aborted && lease.isValid()) {
        if (this.parked.size > 0) {
          let drained;
          try {
            drained = await this.drainSettled(signal);
          } catch (err) {
            await failed('delivering parked events failed', err);
            continue;
          }
          if (drained === 'stopped') {
            await this.options.onStopped(runtime.stats.lastError ?? 'a handler failed');
            break;
          }
          if (drained === 'interrupted') break;
          if (this.parkedChanged && !(await this.checkpoint(position))) break;
        }
        let page;
        try {
          page = await iterator.readNext();
        } catch (err) {
          await failed('reading the change feed failed', err);
          continue;
        }
        // Asked to stop while reading: leave the page unread rather than delay the shutdown.
        if (signal.aborted) break;
        // Only a page that answered 200/304 with every position kept may be handled and checkpointed.
        const fault = pageFault(page, position);
        if (fault) {
          await failed('reading the change feed failed', new Error(fault));
          continue;
        }
        const { events: batch, foreign } = eventsOfPage(page.result ?? []);
        if (foreign > 0) logger.warn(`${name}: ${foreign} document(s) in the events container are not events; not delivered`);
        if (batch.length > 0) {
          let outcome;
          try {
            const traced = { group: runtime.subscriber.name, events: batch.length, range: rangeName, traceparents: isTracing() ? runtime.traceparentsOf(batch) : undefined };
            outcome = await traceSubscriberPage(traced, () => runtime.deliverPage(batch, this.deliveryControl(signal)));
          } catch (err) {
            await failed('recording a dead letter failed', err);
            continue;
          }
          if (outcome === 'stopped') {
            await this.options.onStopped(runtime.stats.lastError ?? 'a handler failed');
            break;
          }
          if (outcome === 'interrupted') break;
        }
        errorDelay = pollIntervalMs;
        position = page.continuationToken;
        // After a 304 too: the first one fixes where a "now" or time start really began.
        if ((position !== lease.continuation || this.parkedChanged) && !(await this.checkpoint(position))) break;
        if (batch.length === 0 && foreign === 0) await sleep(pollIntervalMs, signal);
      }
    } catch (err) {
      if (!isLeaseLost(err)) logger.error(`${name}: reader of ${rangeName} failed: ${describe(err)}`);
    } finally {
      if (!this.abandoned && !lease.lost && lease.isValid()) {
        try {
          await lease.release();
        } catch (err) {
          logger.warn(`${name}: releasing the lease of ${rangeName} failed (it will expire): ${describe(err)}`);
        }
      }
    }
  }

  /**
   * Writes the checkpoint, retrying while the lease is valid (a few times only once asked to stop: the page is
   * handled, its checkpoint saves a redelivery, but shutdown must not wait for an unreachable account). False
   * when the range must be let go without it.
   */
  private async checkpoint(continuation: string | null): Promise<boolean> {
    const { lease, pollIntervalMs, runtime, rangeName } = this.options;
    let delay = pollIntervalMs;
    for (let attempt = 1; ; attempt++) {
      try {
        const changed = this.parkedChanged;
        await lease.checkpoint(continuation, changed ? this.parkedAggregates : undefined);
        if (changed) this.parkedChanged = false;
        return true;
      } catch (err) {
        if (isLeaseLost(err)) throw err;
        runtime.stats.lastError = `checkpointing ${rangeName} failed: ${describe(err)}`;
        if (!lease.isValid() || this.abandoned || (this.stopping && attempt >= 3)) return false;
        await sleep(delay, this.abandonRequest.signal);
        delay = Math.min(MAX_ERROR_DELAY_MS, delay * 2);
      }
    }
  }

  private iterator(position: string | null): ChangeFeedPullModelIterator<unknown> {
    const { events, range, lease, runtime } = this.options;
    return changeFeedIterator(events, range, { continuation: position, startFrom: lease.document.startFrom }, runtime.subscriber.maxItemCount);
  }
}
