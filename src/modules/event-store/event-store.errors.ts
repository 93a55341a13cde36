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
