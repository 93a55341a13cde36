import { EventStoreError, NotFoundError } from '../event-store/index.js';

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
