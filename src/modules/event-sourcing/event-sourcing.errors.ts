import { ConcurrencyError, EventStoreError, ExpectedVersionError, NotFoundError } from '../event-store/index.js';

/** Base class of the errors a repository raises when it refuses a command. */
export class CommandError extends EventStoreError {}

/** A command that mutates an aggregate named one that has no events. HTTP: 404. */
export class AggregateNotFoundError extends NotFoundError {
  constructor(
    readonly aggregateType: string,
    readonly aggregateId: string,
  ) {
    super(`${aggregateType} ${JSON.stringify(aggregateId)} does not exist`);
  }
}

/** A command that creates an aggregate named one that already has events. HTTP: 409. */
export class AggregateAlreadyExistsError extends CommandError {
  constructor(
    readonly aggregateType: string,
    readonly aggregateId: string,
  ) {
    super(`${aggregateType} ${JSON.stringify(aggregateId)} already exists`);
  }
}

/** The command is not allowed in the aggregate's current state. HTTP: 409. */
export class InvalidStateError extends CommandError {
  constructor(
    readonly command: string,
    readonly state: string | undefined,
    readonly allowed: readonly string[],
  ) {
    super(`${command} is not allowed in state ${JSON.stringify(state ?? null)}; allowed in: ${allowed.join(', ')}`);
  }
}

/** The command's own input is invalid; `problems` says what to change. HTTP: 422. */
export class CommandValidationError extends CommandError {
  constructor(
    readonly command: string,
    readonly problems: readonly string[],
  ) {
    super(`${command} is invalid: ${problems.join('; ')}`);
  }
}

/** The command's evaluation refused it against the current state (a business rule). HTTP: 422. */
export class CommandRejectedError extends CommandError {
  constructor(
    readonly command: string,
    readonly reason: string,
  ) {
    super(`${command} was rejected: ${reason}`);
  }
}

/**
 * `apply(command, { idempotencyKey })` with a key this aggregate already applied to a different command
 * (another type or other fields), as payment APIs refuse it. Nothing was stored. HTTP: 422.
 */
export class IdempotencyKeyReusedError extends CommandRejectedError {
  constructor(
    command: string,
    readonly idempotencyKey: string,
  ) {
    super(command, `idempotency key ${JSON.stringify(idempotencyKey)} was used for a different command on this aggregate`);
  }
}

/**
 * `apply(command, { expectedVersion })` found the aggregate at another version than the caller decided on:
 * nothing was stored, and the command is not re-run (the caller must look again). The store's
 * `ExpectedVersionError` (so a `ConcurrencyError`), naming the aggregate as the application knows it.
 * HTTP: 409 (412 for an `If-Match`).
 */
export class AggregateVersionMismatchError extends ExpectedVersionError {
  constructor(
    readonly aggregateType: string,
    readonly id: string,
    streamId: string,
    expected: number,
    found: number,
  ) {
    super(streamId, expected, found);
    this.message = `${aggregateType} ${JSON.stringify(id)} is at version ${found}, not the expected ${expected}; nothing was stored`;
  }
}

/**
 * `apply` lost the concurrency race on every run within its retry budget (`RepositoryOptions.retry`):
 * other commands kept changing the aggregate first. Nothing of this command was stored, so running it again
 * is safe. A `ConcurrencyError` (so `isConflict(err)` holds): as on every one, `aggregateId` is the store's
 * stream id (`<type>/<id>`) and `versions` those of the last lost race; `aggregateType` and `id` name the
 * aggregate as the application knows it, and so does the message. HTTP: 409, may be retried.
 */
export class CommandContentionError extends ConcurrencyError {
  constructor(
    readonly aggregateType: string,
    readonly id: string,
    streamId: string,
    versions: readonly number[],
    readonly attempts: number,
    readonly elapsedMs: number,
  ) {
    super(streamId, versions);
    this.message =
      `${aggregateType} ${JSON.stringify(id)} was changed by concurrent commands on each of ${attempts} ` +
      `run(s) in ${Math.round(elapsedMs)} ms; nothing of this command was stored: run it again`;
  }
}

/**
 * A record in an aggregate's stream that the repository cannot replay: not a decodable event envelope, an
 * event type without an `@On` handler, a version that does not match its record, or a stream that no
 * longer starts at version 1 or a snapshot. The aggregate cannot be loaded until the record is dealt with;
 * retrying does not help. HTTP: 500, the detail (stream, version, cause) in the log only.
 */
export class UnreadableStreamError extends EventStoreError {
  constructor(
    readonly aggregateType: string,
    readonly aggregateId: string,
    readonly streamId: string,
    readonly version: number,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`stream ${JSON.stringify(streamId)} cannot be replayed at version ${version}: ${reason}`, options);
  }
}
