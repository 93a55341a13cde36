import type { Logger } from '@nestjs/common';
import type { ChangeFeedPullModelIterator, Container, FeedRange } from '@azure/cosmos';
import { changeFeedIterator, eventsOfPage } from './change-feed-reader.js';
import { pageFault } from './sdk-adapter.js';
import type { OwnedLease } from './owned-lease.js';
import type { LeaseStore, SettledEvent } from './lease-store.js';
import { describe, type SubscriberRuntime } from './subscriber-runtime.js';
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

  constructor(private readonly options: RangeWorkerOptions) {}

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
            outcome = await runtime.deliverPage(batch, {
              mayContinue: () => !this.abandoned && lease.isValid(),
              signal,
              deadLetter: (letter) => this.options.store.writeDeadLetter({ ...letter, instanceId: this.options.instanceId }),
              isSettled: this.options.isSettled,
            });
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
        if (position !== lease.continuation && !(await this.checkpoint(position))) break;
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
  private async checkpoint(continuation: string): Promise<boolean> {
    const { lease, pollIntervalMs, runtime, rangeName } = this.options;
    let delay = pollIntervalMs;
    for (let attempt = 1; ; attempt++) {
      try {
        await lease.checkpoint(continuation);
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
