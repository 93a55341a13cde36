import { STATUS_CODES } from 'node:http';
import { Catch, HttpException, HttpStatus, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { HttpAdapterHost } from '@nestjs/core';
import { EventStoreError, EventStoreExceptionFilter, type ErrorBody } from 'nest-cosmos-eventstore';

/**
 * The service's last word on any error a route's own filter did not answer, so every error body has the
 * documented shape `{ statusCode, error, message }` (plus the fields the route gave; a body a route built
 * whole, without `statusCode` or `message`, as `/health` does, is answered as it is): Nest's and express's
 * own refusals (404, 413 body too large, 415 unsupported charset or content-encoding, 400 malformed JSON),
 * the guards' 401/403, and an unexpected failure, answered 500 without detail and logged once with its stack
 * (a bug of the service, unlike bad input, which is never logged as an error).
 */
@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('HttpExceptionFilter');
  private readonly storeErrors: EventStoreExceptionFilter;

  constructor(private readonly adapterHost: HttpAdapterHost) {
    this.storeErrors = new EventStoreExceptionFilter(adapterHost);
  }

  catch(err: unknown, host: ArgumentsHost): void {
    if (err instanceof EventStoreError) {
      // This service is HTTP only: the store filter answers, and returns nothing, over HTTP.
      this.storeErrors.catch(err, host);
      return;
    }
    const response = host.switchToHttp().getResponse();
    // A body a route chose whole (GET /health's `{ status, error, info }`) is its documented answer.
    if (err instanceof HttpException && isChosenBody(err.getResponse())) {
      return this.adapterHost.httpAdapter.reply(response, err.getResponse(), err.getStatus());
    }
    const body = this.toBody(err);
    this.adapterHost.httpAdapter.reply(response, body, body.statusCode);
  }

  private toBody(err: unknown): ErrorBody & Record<string, unknown> {
    if (err instanceof HttpException) {
      const statusCode = err.getStatus();
      const error = STATUS_CODES[statusCode] ?? 'Error';
      const response = err.getResponse();
      if (typeof response === 'string') return { statusCode, error, message: response };
      const fields = response as Record<string, unknown>;
      const message = Array.isArray(fields.message) ? fields.message.join('; ') : fields.message;
      return {
        ...fields,
        statusCode,
        error: typeof fields.error === 'string' ? fields.error : error,
        message: typeof message === 'string' ? message : error,
      };
    }
    this.logger.error(err instanceof Error ? err.message : String(err), err instanceof Error ? err.stack : undefined);
    return {
      statusCode: HttpStatus.INTERNAL_SERVER_ERROR,
      error: 'Internal Server Error',
      message: 'the service failed; its log has the detail',
    };
  }
}

/** An exception body that is not an error description (`statusCode`/`message`), but what the route answers. */
function isChosenBody(response: string | object): boolean {
  return typeof response === 'object' && response !== null && !('statusCode' in response) && !('message' in response);
}
