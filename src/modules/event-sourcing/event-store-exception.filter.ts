import { Catch, HttpStatus, Logger, Optional, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { throwError, type Observable } from 'rxjs';
import { statusOf } from '../cosmos/index.js';
import {
  ConcurrencyError,
  EventStoreError,
  isLostConnection,
  NotFoundError,
  ValidationError,
  WriteOutcomeUnknownError,
} from '../event-store/index.js';
import {
  AggregateAlreadyExistsError,
  CommandContentionError,
  CommandError,
  CommandRejectedError,
  CommandValidationError,
  InvalidStateError,
  UnreadableStreamError,
} from './event-sourcing.errors.js';

/** The JSON error body, shaped like Nest's own (`statusCode`, `error`, `message`) plus what the client needs. */
export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string;
  /** The input to change (`ValidationError`). */
  field?: string;
  /** The versions that already exist (`ConcurrencyError`). */
  versions?: readonly number[];
  /** What is wrong with a command's input (`CommandValidationError`). */
  problems?: readonly string[];
  /** true: nothing was changed and the same request may simply be sent again (`CommandContentionError`). */
  retryable?: boolean;
}

/**
 * The error a GraphQL resolver ends with: GraphQL servers copy `extensions` of the error a resolver threw into the
 * answer's `errors[].extensions`, so clients see the same `statusCode`, `error` and details as over HTTP.
 */
export class EventStoreGraphQLError extends Error {
  readonly extensions: ErrorBody & { code: string };

  constructor(body: ErrorBody, options?: ErrorOptions) {
    super(body.message, options);
    this.name = 'EventStoreGraphQLError';
    this.extensions = { code: body.error.toUpperCase().replaceAll(' ', '_'), ...body };
  }
}

/**
 * Answers the event store's errors as JSON: `ValidationError` → 400; `CommandContentionError` → 409 with
 * `retryable: true` (a command that kept losing the race to concurrent ones; nothing stored, send it again);
 * `ConcurrencyError`, `AggregateAlreadyExistsError` and `InvalidStateError` → 409; `NotFoundError` (so `AggregateNotFoundError`)
 * → 404; `CommandValidationError` and `CommandRejectedError` → 422; `WriteOutcomeUnknownError` → 503 telling
 * the client to reload first; `UnreadableStreamError` → 500 naming the aggregate (the stream and the
 * cause go to the log, one line, no stack); any other `EventStoreError` (Cosmos DB failed) → 503 when Cosmos DB was
 * unreachable, throttled or timed out (worth retrying), else 500; the detail is logged, not sent.
 *
 * Works in every context, also when bound globally in a hybrid app: over HTTP it answers the body; in a
 * microservice (RPC) handler it answers an error observable carrying the same body (`{ status: 'error', ...body }`,
 * as Nest's `BaseRpcExceptionFilter` shapes its errors); in a GraphQL resolver it returns an
 * `EventStoreGraphQLError` whose `extensions` hold the body; on a WebSocket gateway it emits the body as an
 * `exception` event to the client (as Nest's `BaseWsExceptionFilter` does), or rethrows when the client
 * cannot emit.
 */
@Catch(EventStoreError)
export class EventStoreExceptionFilter implements ExceptionFilter<EventStoreError> {
  private readonly logger = new Logger(EventStoreExceptionFilter.name);

  // Optional: a microservice-only application has no HTTP adapter.
  constructor(@Optional() private readonly adapterHost?: HttpAdapterHost) {}

  catch(err: EventStoreError, host: ArgumentsHost): void | Observable<never> | EventStoreGraphQLError {
    const body = this.toBody(err);
    const type = host.getType<'http' | 'rpc' | 'ws' | 'graphql'>();
    if (type === 'rpc') return throwError(() => ({ status: 'error', ...body }));
    if (type === 'graphql') return new EventStoreGraphQLError(body, { cause: err });
    if (type === 'ws') {
      const client = host.switchToWs().getClient<{ emit?: unknown } | undefined>();
      if (typeof client?.emit !== 'function') throw err;
      (client.emit as (event: string, data: unknown) => void).call(client, 'exception', { status: 'error', ...body });
      return;
    }
    const adapter = this.adapterHost?.httpAdapter;
    if (!adapter) throw err;
    adapter.reply(host.switchToHttp().getResponse(), body, body.statusCode);
  }

  private toBody(err: EventStoreError): ErrorBody {
    if (err instanceof ValidationError) {
      return { statusCode: HttpStatus.BAD_REQUEST, error: 'Bad Request', message: err.message, field: err.field };
    }
    if (err instanceof CommandContentionError) {
      return { statusCode: HttpStatus.CONFLICT, error: 'Conflict', message: err.message, retryable: true };
    }
    if (err instanceof ConcurrencyError) {
      return { statusCode: HttpStatus.CONFLICT, error: 'Conflict', message: err.message, versions: err.versions };
    }
    if (err instanceof AggregateAlreadyExistsError || err instanceof InvalidStateError) {
      return { statusCode: HttpStatus.CONFLICT, error: 'Conflict', message: err.message };
    }
    if (err instanceof CommandValidationError) {
      return { statusCode: HttpStatus.UNPROCESSABLE_ENTITY, error: 'Unprocessable Entity', message: err.message, problems: err.problems };
    }
    if (err instanceof CommandRejectedError || (err instanceof CommandError && !(err instanceof NotFoundError))) {
      return { statusCode: HttpStatus.UNPROCESSABLE_ENTITY, error: 'Unprocessable Entity', message: err.message };
    }
    if (err instanceof NotFoundError) {
      return { statusCode: HttpStatus.NOT_FOUND, error: 'Not Found', message: err.message };
    }
    if (err instanceof UnreadableStreamError) {
      // Stored data, not a bug of this request: the stack says nothing, the stream and version say it all.
      this.logger.error(err.message);
      return {
        statusCode: HttpStatus.INTERNAL_SERVER_ERROR,
        error: 'Internal Server Error',
        message:
          `${err.aggregateType} ${JSON.stringify(err.aggregateId)} cannot be read: its stored event at version ${err.version} ` +
          'is not one this service can replay; the service log has the detail',
      };
    }
    this.logger.error(err.message, err.stack);
    if (err instanceof WriteOutcomeUnknownError) {
      // The records may be stored already: a blind retry of a raw append ends in 409 if they were, but a
      // command re-run on fresh state would apply again. The client must look first.
      return {
        statusCode: HttpStatus.SERVICE_UNAVAILABLE,
        error: 'Service Unavailable',
        message: 'Cosmos DB did not confirm the write, which may have been stored; reload the aggregate before retrying',
        versions: err.versions,
      };
    }
    if (isUnavailable(err.cause)) {
      return {
        statusCode: HttpStatus.SERVICE_UNAVAILABLE,
        error: 'Service Unavailable',
        message: 'Cosmos DB is unavailable; retry later',
      };
    }
    return {
      statusCode: HttpStatus.INTERNAL_SERVER_ERROR,
      error: 'Internal Server Error',
      message: 'the event store failed; the service log has the detail',
    };
  }
}

/**
 * Whether a failure is Cosmos DB being unavailable (throttled, timed out, unreachable, the connection lost)
 * after the stores' retries, so worth retrying later: what `EventStoreExceptionFilter` answers 503. For
 * routes that shape their errors themselves.
 */
export function isCosmosUnavailable(err: unknown): boolean {
  return err instanceof EventStoreError ? err instanceof WriteOutcomeUnknownError || isUnavailable(err.cause) : isUnavailable(err);
}

/** Throttled (429), timed out (408), unavailable (503), or no answer at all (a network error along the cause chain). */
function isUnavailable(cause: unknown): boolean {
  const status = statusOf(cause);
  if (status !== undefined) return status === 408 || status === 429 || status === 503;
  // A network error code along the cause chain (refused, reset, timed out, cut mid-answer), also one the SDK
  // rethrew with its message only (the change feed iterator does). Other codes (a body that arrived whole
  // but does not parse, Node's ERR_* programming errors) would fail again: not worth a retry.
  return isLostConnection(cause);
}
