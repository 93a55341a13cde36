import { ValidationError } from './event-store.errors.js';
import { MAX_PARTITION_KEY_BYTES } from './cosmos-limits.js';

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

/** Absolute expiry in epoch seconds: absent, 0 (never) or a positive safe integer. */
export function checkExpiry(field: string, value: unknown): void {
  checkWholeSeconds(field, value, 'epoch seconds; 0 means no expiry');
}

/** A duration in seconds: absent, 0 (none) or a positive safe integer. */
export function checkSeconds(field: string, value: unknown): void {
  checkWholeSeconds(field, value, 'seconds; 0 means none');
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
