import { backoffMs, isTransientReadFailure, messageOf, pause } from '../cosmos/index.js';
import { EventStoreError, ValidationError } from './event-store.errors.js';

// The classification of failures lives with the Cosmos DB errors; the stores import it from here too.
export {
  backoffMs,
  classifyBatchFailure,
  isLostConnection,
  isTransientReadFailure,
  pause,
  sdkRetriedUnknownOutcome,
  type BatchFailure,
} from '../cosmos/index.js';

/**
 * How the Cosmos stores retry a request that failed transiently: HTTP 408, 449 or 503, a client timeout or
 * a lost connection, on the event store's reads and batches and on every call of the aggregates store.
 * Throttling (429) is retried by @azure/cosmos itself, as `CosmosModule`'s `retryOptions` say, and is not
 * retried again here.
 */
export interface StoreRetryOptions {
  /** Attempts in all, the first included; 1 turns the store's own retries off. Default 5. */
  maxAttempts?: number;
  /** Wait before the first retry, in ms; it doubles for each further retry, with jitter. Default 100. */
  initialDelayMs?: number;
  /** Upper bound of one wait, in ms. Default 2000. */
  maxDelayMs?: number;
}

export const DEFAULT_STORE_RETRY_OPTIONS: Readonly<Required<StoreRetryOptions>> = Object.freeze({
  maxAttempts: 5,
  initialDelayMs: 100,
  maxDelayMs: 2000,
});

/** The options with their defaults, refused with a `ValidationError` naming the field when malformed. */
export function resolveRetryOptions(options: StoreRetryOptions | undefined): Required<StoreRetryOptions> {
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw new ValidationError('retries', 'must be an object');
  }
  const resolved = { ...DEFAULT_STORE_RETRY_OPTIONS, ...options };
  const check = (field: keyof StoreRetryOptions, min: number) => {
    const value = resolved[field];
    if (!Number.isSafeInteger(value) || value < min) {
      throw new ValidationError(`retries.${field}`, `must be an integer of at least ${min}, got ${String(value)}`);
    }
  };
  check('maxAttempts', 1);
  check('initialDelayMs', 0);
  check('maxDelayMs', 0);
  return resolved;
}

/**
 * Runs `attempt` (given its number, from 1) again after a backoff for as long as it fails transiently
 * (`isTransientReadFailure`) and `retries` allow: only for work that is safe to repeat, reads and writes
 * whose repetition changes nothing more. The last failure becomes an `EventStoreError` "`what` failed"
 * with it as `cause`; an `EventStoreError` of `attempt`'s own passes as it is. An abort of `signal`, in a
 * request or while waiting, ends it at once with the signal's reason (an `AbortError`). For a read model
 * of your own on Cosmos DB, as the stores do it; `EventStoreExceptionFilter` answers what it throws after
 * transient failures with 503.
 *
 * @example
 * const retries = resolveRetryOptions({ maxAttempts: 5 });
 * const { resource } = await retryTransient('read stats', retries, signal, () => container.item(id, pk).read());
 */
export async function retryTransient<T>(
  what: string,
  retries: Required<StoreRetryOptions>,
  signal: AbortSignal | undefined,
  attempt: (n: number) => Promise<T>,
): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      signal?.throwIfAborted();
      if (err instanceof EventStoreError) throw err;
      if (!isTransientReadFailure(err) || n >= retries.maxAttempts) {
        throw new EventStoreError(`${what} failed: ${messageOf(err)}`, { cause: err });
      }
    }
    await pause(backoffMs(n, retries), signal);
  }
}

