import { ValidationError } from './event-store.errors.js';
import { MAX_ITEM_TTL_SECONDS, MAX_PARTITION_KEY_BYTES } from './cosmos-limits.js';

/** A non-empty, well-formed string whose UTF-8 form fits a partition key value. */
export function checkPartitionKey(field: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new ValidationError(field, 'must be a non-empty string');
  }
  // Lone surrogates cannot be encoded as UTF-8: the service would store something else than was given.
  if (!value.isWellFormed()) throw new ValidationError(field, 'must be well-formed Unicode (no lone surrogates)');
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > MAX_PARTITION_KEY_BYTES) {
    throw new ValidationError(field, `is ${bytes} bytes in UTF-8; Cosmos DB allows at most ${MAX_PARTITION_KEY_BYTES}`);
  }
}

/** A stream version: a positive safe integer. */
export function checkVersion(field: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new ValidationError(field, `must be a positive safe integer, got ${String(value)}`);
  }
}

/** Absolute expiry in epoch seconds: absent, 0 (never) or a positive safe integer. */
export function checkExpiry(field: string, value: unknown): void {
  checkWholeSeconds(field, value, 'epoch seconds; 0 means no expiry');
}

/**
 * A record's `ttl`: absent or 0 (no expiry of its own), else an absolute expiry in epoch seconds that is
 * still ahead of `now`. An expiry already reached would be stored only to be hidden from every read, and its
 * version would still be taken: a writer would get a conflict on a version no reader can see. A small
 * number is most likely seconds from now, given where an epoch time was meant, so the message says so.
 */
export function checkRecordExpiry(field: string, value: unknown, now: number): void {
  checkExpiry(field, value);
  if (typeof value !== 'number' || value === 0 || value > now) return;
  // Before 2001 in epoch seconds: almost certainly a duration given where an expiry time was meant.
  const hint = value < 1_000_000_000 ? ` (for ${value} seconds from now give ${now + value})` : '';
  throw new ValidationError(
    field,
    `is ${value}, not in the future (now is ${now}): ttl is an absolute expiry in epoch seconds${hint}, or 0 for none`,
  );
}

/** A duration in seconds that becomes an item `ttl`: absent, 0 (none) or a positive integer Cosmos DB accepts. */
export function checkSeconds(field: string, value: unknown): void {
  checkWholeSeconds(field, value, 'seconds; 0 means none');
  if (typeof value === 'number' && value > MAX_ITEM_TTL_SECONDS) {
    throw new ValidationError(field, `must be at most ${MAX_ITEM_TTL_SECONDS} seconds (about 68 years), Cosmos DB's largest item ttl`);
  }
}

/**
 * The item `ttl` for an absolute expiry: the seconds left (at least 1, so an expiry already past is purged at
 * once), refused when further ahead than Cosmos DB's largest item ttl, which it would answer with 400.
 */
export function ttlUntil(field: string, expiry: number, now: number): number {
  const ttl = Math.max(1, expiry - now);
  if (ttl > MAX_ITEM_TTL_SECONDS) {
    throw new ValidationError(
      field,
      `is ${ttl} seconds from now; Cosmos DB's item ttl allows at most ${MAX_ITEM_TTL_SECONDS} (about 68 years). Use 0 for no expiry`,
    );
  }
  return ttl;
}

function checkWholeSeconds(field: string, value: unknown, unit: string): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new ValidationError(field, `must be a non-negative integer (${unit})`);
  }
}

export function checkSignal(options: { abortSignal?: AbortSignal } | undefined): void {
  options?.abortSignal?.throwIfAborted();
}

/** How many records `loadTail(n)` reads: whole, 0 for none (then no request is sent). */
export function tailCount(n: unknown): number {
  if (typeof n !== 'number' || Number.isNaN(n)) throw new ValidationError('n', 'must be a number');
  return n < 1 ? 0 : Math.min(Math.floor(n), Number.MAX_SAFE_INTEGER);
}

/** Records per page of `readStream`, when the caller gives none. */
export const DEFAULT_STREAM_PAGE_SIZE = 1000;

// maxItemCount is an int32 on the wire.
const MAX_PAGE_SIZE = 2_147_483_647;

/** The page size of `readStream`: a positive integer that fits the wire's int32, 1000 when absent. */
export function streamPageSize(value: unknown): number {
  if (value === undefined) return DEFAULT_STREAM_PAGE_SIZE;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > MAX_PAGE_SIZE) {
    throw new ValidationError('pageSize', `must be a positive integer of at most ${MAX_PAGE_SIZE}, got ${String(value)}`);
  }
  return value;
}
