import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpException, HttpStatus, Logger } from '@nestjs/common';
import {
  AggregateVersionMismatchError,
  isOutcomeUnknown,
  ValidationError,
  type ApplyOptions,
} from 'nest-cosmos-eventstore';

const logger = new Logger('OrdersController');

/** Longest `Idempotency-Key` the order routes take (a UUID is 36). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 200;

/**
 * The command options of a request's headers: `Idempotency-Key` (1 to `MAX_IDEMPOTENCY_KEY_LENGTH` visible
 * ASCII characters, given once) and `If-Match: "<version>"` (one strong entity tag holding a version, as
 * `GET /orders/:id` answers it in `ETag`). Anything else is a `ValidationError` naming the header.
 */
export function commandOptions(req: IncomingMessage): ApplyOptions {
  const options: ApplyOptions = {};
  const key = singleHeader(req, 'idempotency-key');
  if (key !== undefined) {
    if (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH || !/^[\x21-\x7e]+$/.test(key)) {
      throw new ValidationError('Idempotency-Key', `must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters`);
    }
    options.idempotencyKey = key;
  }
  const ifMatch = singleHeader(req, 'if-match');
  if (ifMatch !== undefined) {
    const version = /^"(0|[1-9]\d{0,14})"$/.exec(ifMatch.trim());
    if (!version) throw new ValidationError('If-Match', 'must be one entity tag "<version>", as GET /orders/:id answers it in ETag');
    options.expectedVersion = Number(version[1]);
  }
  return options;
}

/** The entity tag of an order at `version`: `"<version>"`. */
export function versionTag(version: number): string {
  return `"${version}"`;
}

/**
 * A PlaceOrder without an `orderId` but with an `Idempotency-Key` takes an id derived from the key and the
 * actor, so that its retry addresses the same order (a key's record lives in its aggregate's tip): the
 * retry finds the key and answers the first outcome, and the same key with another body is refused.
 */
export function orderIdForKey(actor: string, key: string): string {
  const h = createHash('sha256').update(JSON.stringify(['order-idempotency', actor, key])).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16], 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * Answers what the command options make special: a version other than `If-Match` named is 412 with the
 * order's current `version`; a write Cosmos DB did not confirm, sent with an `Idempotency-Key`, is 503
 * telling the client to retry with the same key (without a key the exception filter's "reload first"
 * stands). Any other error is returned unchanged.
 */
export function commandError(err: unknown, options: ApplyOptions): unknown {
  if (err instanceof AggregateVersionMismatchError && options.expectedVersion !== undefined) {
    return new HttpException(
      { statusCode: HttpStatus.PRECONDITION_FAILED, error: 'Precondition Failed', message: err.message, version: err.found },
      HttpStatus.PRECONDITION_FAILED,
      { cause: err },
    );
  }
  if (isOutcomeUnknown(err) && options.idempotencyKey !== undefined) {
    // As the exception filter logs it without a key: a write Cosmos DB did not confirm is worth a line.
    logger.warn(err.message);
    return new HttpException(
      {
        statusCode: HttpStatus.SERVICE_UNAVAILABLE,
        error: 'Service Unavailable',
        message: 'Cosmos DB did not confirm the write, which may have been stored; retry with the same Idempotency-Key',
        retryable: true,
      },
      HttpStatus.SERVICE_UNAVAILABLE,
      { cause: err },
    );
  }
  return err;
}

function singleHeader(req: IncomingMessage, name: string): string | undefined {
  const given = req.rawHeaders.filter((n, i) => i % 2 === 0 && n.toLowerCase() === name).length;
  if (given > 1) throw new ValidationError(name === 'if-match' ? 'If-Match' : 'Idempotency-Key', 'must be given once');
  const value = req.headers[name];
  return typeof value === 'string' ? value : undefined;
}
