import { Inject, Injectable, Logger } from '@nestjs/common';
import { healthIndicatorSession, type HealthIndicatorResult } from '../cosmos/index.js';
import { DEFAULT_STORE_RETRY_OPTIONS, retryTransient } from '../event-store/index.js';
import { SUBSCRIPTIONS } from './subscriptions.constants.js';
import { describe } from './subscriber-runtime.js';
import type { GroupState, Subscriptions } from './subscriptions.interfaces.js';

/** One subscriber in the health answer. */
export interface SubscriberHealth {
  state: GroupState | 'not-started';
  estimatedPending: number;
  behindMs: number;
  /** Feed ranges this instance reads. */
  ownedHere: string[];
  reason?: string;
  /** Who stopped the group, when it is stopped (see `SubscriberLag.stoppedBy`). */
  stoppedBy?: 'failure' | 'operator';
}

/** The outcome of `SubscriptionsHealthIndicator.check()`: the details of its terminus result. */
export type SubscriptionsHealth =
  | { status: 'up'; subscribers: Record<string, SubscriberHealth> }
  | { status: 'down'; subscribers: Record<string, SubscriberHealth>; message: string };

/**
 * A @nestjs/terminus health indicator of the subscriptions, provided by `SubscriptionsModule` (and its
 * `inMemory()`): `isHealthy()` is `down` when a consumer group is stopped, on a failure or by an operator's
 * `stopGroup()` (either way it reads nothing until `resume()`), with its reason and `stoppedBy`, or when the
 * lag cannot be read; `up` otherwise, a lagging group included, with every
 * subscriber's state and lag under `subscribers`. Never throws, never waits longer than the timeout.
 *
 * @example
 * this.health.check([() => this.cosmos.isHealthy(), () => this.subscriptions.isHealthy()])
 */
@Injectable()
export class SubscriptionsHealthIndicator {
  private readonly logger = new Logger(SubscriptionsHealthIndicator.name);

  constructor(@Inject(SUBSCRIPTIONS) private readonly subscriptions: Subscriptions) {}

  /** The terminus result under `key` (default `subscriptions`): `{ status, subscribers, message? }`. */
  async isHealthy<Key extends string = 'subscriptions'>(
    key: Key = 'subscriptions' as Key,
    options: { timeoutMs?: number } = {},
  ): Promise<HealthIndicatorResult<Key>> {
    const { status, ...details } = await this.check(options);
    const session = await healthIndicatorSession(key);
    return status === 'up' ? session.up(details) : session.down(details);
  }

  /** The same answer as `{ status: 'up' | 'down', subscribers, message? }` (for callers that do not use terminus). */
  async check(options: { timeoutMs?: number } = {}): Promise<SubscriptionsHealth> {
    const timeoutMs = options.timeoutMs ?? 3_000;
    const owned = new Map(this.subscriptions.status().map((s) => [s.name, s.ownedRanges]));
    let timer: NodeJS.Timeout | undefined;
    try {
      const lags = await Promise.race([
        // One lost connection or cut answer is retried within the timeout, as the stores retry theirs.
        retryTransient('reading the lag', DEFAULT_STORE_RETRY_OPTIONS, undefined, () => this.subscriptions.lag()),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`the subscriptions' lag was not read within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      const subscribers: Record<string, SubscriberHealth> = {};
      for (const lag of lags) {
        subscribers[lag.name] = {
          state: lag.state,
          estimatedPending: lag.estimatedPending,
          behindMs: lag.behindMs,
          ownedHere: owned.get(lag.name) ?? [],
          ...(lag.reason === undefined ? {} : { reason: lag.reason }),
          ...(lag.stoppedBy === undefined ? {} : { stoppedBy: lag.stoppedBy }),
        };
      }
      // Stopped on purpose is down too: nothing is read while it lasts, and a stop forgotten after maintenance
      // must show. Each stopped group's reason is under subscribers[name].reason.
      const stopped = lags.filter((l) => l.state === 'stopped');
      const failed = stopped.filter((l) => l.stoppedBy !== 'operator').map((l) => l.name);
      const halted = stopped.filter((l) => l.stoppedBy === 'operator').map((l) => l.name);
      if (stopped.length > 0) {
        const message = [
          ...(failed.length > 0 ? [`stopped on a failure: ${failed.join(', ')}`] : []),
          ...(halted.length > 0 ? [`stopped by an operator: ${halted.join(', ')}`] : []),
        ].join('; ');
        return { status: 'down', subscribers, message };
      }
      return { status: 'up', subscribers };
    } catch (err) {
      const message = describe(err).split('\n')[0];
      this.logger.warn(`subscriptions health check failed: ${message}`);
      return { status: 'down', subscribers: {}, message };
    } finally {
      clearTimeout(timer);
    }
  }
}
