/** Base class of every error the event store raises on purpose. */
export class EventStoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A version the caller tried to write already exists: another writer got there first. Reload and retry. */
export class ConcurrencyError extends EventStoreError {
  constructor(
    readonly aggregateId: string,
    readonly versions: readonly number[],
    options?: { cause?: unknown },
  ) {
    super(
      `aggregate ${JSON.stringify(aggregateId)}: version ${versions.join(', ')} already exists; reload the aggregate and retry`,
      options,
    );
  }
}

/**
 * A save's `expectedVersion` did not match the stream: `expected` is what the caller gave, `found` the
 * stream's last version when the mismatch was seen (0: no stream; -1: the read after the failure failed). Nothing of the checked chunk was written.
 */
export class ExpectedVersionError extends ConcurrencyError {
  constructor(
    aggregateId: string,
    readonly expected: number | 'no-stream',
    readonly found: number,
    options?: { cause?: unknown },
  ) {
    super(aggregateId, found > 0 ? [found] : [], options);
    this.message =
      `aggregate ${JSON.stringify(aggregateId)}: expected ${expected === 'no-stream' ? 'no stream' : `version ${expected}`}, ` +
      `found ${found === 0 ? 'no stream' : found < 0 ? 'a version the read after the failure could not tell' : `version ${found}`}; ` +
      'reload the aggregate and decide again';
  }
}

/**
 * A save failed in a way that leaves open whether some of its records were stored: an attempt was lost
 * after the service may have applied it (connection reset, timeout, 408/503) and the retries could not
 * settle it. `versions` are the records of the chunk in doubt; chunks before it were stored, chunks after
 * it were not sent. Load the aggregate to see which it was before deciding what to write next.
 */
export class WriteOutcomeUnknownError extends EventStoreError {
  constructor(
    readonly aggregateId: string,
    readonly versions: readonly number[],
    options?: { cause?: unknown },
  ) {
    super(
      `aggregate ${JSON.stringify(aggregateId)}: the outcome of writing versions ${versions[0]}..${versions[versions.length - 1]} ` +
        'is unknown (the service may have applied them); load the aggregate before writing again',
      options,
    );
  }
}

/** No live document at the given keys. */
export class NotFoundError extends EventStoreError {}

/** The input cannot be stored as given; `field` names what to change. Raised before any request. */
export class ValidationError extends EventStoreError {
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

/** True exactly when `err` reports a duplicate-version write (protosource `IsConflict`). */
export function isConflict(err: unknown): err is ConcurrencyError {
  return err instanceof ConcurrencyError;
}

/** True when `err` is a save whose records may or may not have been stored (`WriteOutcomeUnknownError`). */
export function isOutcomeUnknown(err: unknown): err is WriteOutcomeUnknownError {
  return err instanceof WriteOutcomeUnknownError;
}
