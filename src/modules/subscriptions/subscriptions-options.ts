import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { DEFAULT_LEASES_CONTAINER } from './subscriptions.constants.js';
import type { FailurePolicy, RetryOptions, SubscriptionsModuleOptions } from './subscriptions.interfaces.js';

/** `SubscriptionsModuleOptions` with every default applied. */
export interface ResolvedSubscriptionsOptions {
  leasesContainerId: string;
  ensure: boolean;
  instanceId: string;
  leaseDurationMs: number;
  renewIntervalMs: number;
  pollIntervalMs: number;
  maxItemCount: number;
  retry: Required<RetryOptions>;
  onFailure: FailurePolicy;
  autoStart: boolean;
  shutdownTimeoutMs: number;
  deadLetterTtlSeconds?: number;
  leases: number;
}

export const DEFAULT_RETRY: Required<RetryOptions> = { attempts: 5, initialDelayMs: 200, maxDelayMs: 10_000 };

/** Applies the defaults and rejects what cannot work, naming the option. */
export function resolveSubscriptionsOptions(options: SubscriptionsModuleOptions = {}): ResolvedSubscriptionsOptions {
  const fail = (field: string, what: string) => new Error(`SubscriptionsModule: option "${field}" ${what}`);
  const positive = (field: keyof SubscriptionsModuleOptions, fallback: number): number => {
    const value = options[field] ?? fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw fail(field, 'must be a positive integer');
    return value;
  };
  const leasesContainerId = options.leasesContainerId ?? DEFAULT_LEASES_CONTAINER;
  if (typeof leasesContainerId !== 'string' || leasesContainerId === '' || /[/\\?#]/.test(leasesContainerId)) {
    throw fail('leasesContainerId', 'must be a Cosmos DB container id (non-empty, without / \\ ? #)');
  }
  const instanceId = options.instanceId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  if (typeof instanceId !== 'string' || instanceId === '') throw fail('instanceId', 'must be a non-empty string');
  const leaseDurationMs = positive('leaseDurationMs', 30_000);
  const renewIntervalMs = positive('renewIntervalMs', Math.min(5_000, Math.floor(leaseDurationMs / 3)));
  if (renewIntervalMs * 2 > leaseDurationMs) {
    throw fail('renewIntervalMs', `must be at most half of leaseDurationMs (${leaseDurationMs}), so a lease is renewed before it expires`);
  }
  const onFailure = options.onFailure ?? 'dead-letter';
  if (onFailure !== 'dead-letter' && onFailure !== 'stop') throw fail('onFailure', "must be 'dead-letter' or 'stop'");
  return {
    leasesContainerId,
    ensure: options.ensure ?? true,
    instanceId,
    leaseDurationMs,
    renewIntervalMs,
    pollIntervalMs: positive('pollIntervalMs', 1_000),
    maxItemCount: positive('maxItemCount', 100),
    retry: resolveRetry(options.retry, DEFAULT_RETRY, 'retry'),
    onFailure,
    autoStart: options.autoStart ?? true,
    shutdownTimeoutMs: positive('shutdownTimeoutMs', 10_000),
    leases: positive('leases', 8),
    ...(options.deadLetterTtlSeconds === undefined ? {} : { deadLetterTtlSeconds: positive('deadLetterTtlSeconds', 0) }),
  };
}

export function resolveRetry(retry: RetryOptions | undefined, defaults: Required<RetryOptions>, where: string): Required<RetryOptions> {
  const resolved = { ...defaults, ...retry };
  for (const [field, min] of [['attempts', 1], ['initialDelayMs', 0], ['maxDelayMs', 0]] as const) {
    const value = resolved[field];
    if (!Number.isSafeInteger(value) || value < min) throw new Error(`${where}.${field} must be an integer of at least ${min}`);
  }
  return resolved;
}
