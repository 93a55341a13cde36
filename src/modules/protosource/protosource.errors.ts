import { EventStoreError } from '../event-store/index.js';

/** An event's bytes that protosource's readers would refuse too: not an `Any`, an unknown type, bad gzip. */
export class ProtosourceDecodeError extends EventStoreError {
}

/**
 * A command refused before any event was written, with the code protosource's generated handlers answer
 * (`CMD_VALIDATION`, `CMD_ALREADY_CREATED`, `CMD_NOT_CREATED`, `CMD_STATE_VIOLATION`, `CMD_EMPTY_ID`) and
 * its HTTP status.
 */
export class ProtosourceCommandError extends EventStoreError {
  constructor(
    readonly code: ProtosourceCommandErrorCode,
    message: string,
  ) {
    super(message);
  }

  /** The status protosource's generated handlers give this code. */
  get status(): number {
    return COMMAND_ERROR_STATUS[this.code];
  }
}

export type ProtosourceCommandErrorCode = 'CMD_VALIDATION' | 'CMD_EMPTY_ID' | 'CMD_ALREADY_CREATED' | 'CMD_NOT_CREATED' | 'CMD_STATE_VIOLATION';

const COMMAND_ERROR_STATUS: Record<ProtosourceCommandErrorCode, number> = {
  CMD_VALIDATION: 400,
  CMD_EMPTY_ID: 400,
  CMD_ALREADY_CREATED: 409,
  CMD_NOT_CREATED: 404,
  CMD_STATE_VIOLATION: 409,
};

/** Type guard for `ProtosourceCommandError`, across module copies. */
export function isProtosourceCommandError(err: unknown): err is ProtosourceCommandError {
  return err instanceof Error && err.name === 'ProtosourceCommandError' && typeof (err as ProtosourceCommandError).code === 'string';
}
