import type { CosmosDiagnostics } from '@azure/cosmos';
import { statusOf } from './cosmos-errors.js';

/*
 * What a failed Cosmos DB request tells about itself: worth sending again or not, and whether a write may
 * have been applied although no success came back. Every module that talks to Cosmos DB asks here.
 */

/** The wait before retry number `retry` (1 for the first): exponential, capped, half of it random. */
export function backoffMs(retry: number, options: { initialDelayMs: number; maxDelayMs: number }): number {
  const cap = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** Math.min(retry - 1, 30));
  // Jitter keeps writers that failed together from retrying together.
  return cap / 2 + Math.random() * (cap / 2);
}

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

// Statuses the service gives for a request it could not serve now: timed out, busy, or retry-with.
const TRANSIENT_STATUSES = new Set([408, 449, 503]);
// A request answered with these may still have been applied by the service (it timed out or went away
// while working on it); 449 says it was not.
const UNKNOWN_OUTCOME_STATUSES = new Set([408, 503]);

// Network failures where no request reached the service: nothing can have been applied.
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'UND_ERR_CONNECT_TIMEOUT',
]);
/**
 * Error codes of a lost connection or a timeout, as @azure/cosmos surfaces them: Node's socket errors (its
 * HTTP client passes `err.code` on), core-rest-pipeline's `REQUEST_SEND_ERROR`, undici's socket errors, and
 * the SDK's own client timeout, `TimeoutError` (it turns the aborted request of its `requestTimeout` into
 * that; an abort by the caller's signal stays an `AbortError` and is never retried). Other string codes,
 * such as Node's `ERR_*` programming errors, are not transient.
 */
const NETWORK_ERROR_CODES = new Set([
  ...NOT_SENT_CODES,
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ECONNABORTED',
  'EHOSTDOWN',
  'REQUEST_SEND_ERROR',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'TimeoutError',
]);

// The HTTP client of @azure/cosmos (@typespec/ts-http-runtime) turns a body that stopped short (the
// connection closed or reset mid-answer) into `RestError("Error reading response as text: aborted")` with
// code PARSE_ERROR. The same code marks a body that arrived whole but did not parse, which another attempt
// would not fix: only the message tells the cut answer apart.
const CUT_ANSWER = /^Error reading response as text\b/;
// How deep `cause` chains are followed: the SDK and undici wrap a socket error at most twice.
const MAX_CAUSE_DEPTH = 3;

// A network code as a word of a message, for errors the SDK rebuilt from the message alone.
const NETWORK_CODE_IN_MESSAGE = new RegExp(`\\b(${[...NETWORK_ERROR_CODES].filter((c) => c !== 'TimeoutError').join('|')})\\b`);

function isNetworkMessage(message: string): boolean {
  return CUT_ANSWER.test(message) || NETWORK_CODE_IN_MESSAGE.test(message);
}

/**
 * A failed read worth running again: a transient status, the SDK's client timeout (`TimeoutError`), a
 * network error code (`ECONNRESET`, `EPIPE`, `UND_ERR_SOCKET`, ...) on the error or along its `cause`
 * chain, or an answer cut mid-body (`Error reading response as text: aborted`). Reads change nothing, so
 * any of these is safe to repeat.
 */
export function isTransientReadFailure(err: unknown): boolean {
  const status = statusOf(err);
  if (status !== undefined) return TRANSIENT_STATUSES.has(status);
  return isLostConnection(err);
}

/**
 * True for a failure without an answer from the service: a network error code on the error or its causes,
 * the SDK's client timeout, or an answer cut mid-body. A write that failed so may have been applied
 * (unless the code says the request never left, `ECONNREFUSED` and the like).
 */
export function isLostConnection(err: unknown): boolean {
  for (let depth = 0, at = err; depth < MAX_CAUSE_DEPTH && at !== null && typeof at === 'object'; depth++) {
    const { code, message, cause } = at as { code?: unknown; message?: unknown; cause?: unknown };
    if (typeof code === 'string' && NETWORK_ERROR_CODES.has(code)) return true;
    if (code === 'PARSE_ERROR' && typeof message === 'string' && CUT_ANSWER.test(message)) return true;
    // The change feed iterator rethrows as an ErrorResponse that keeps the message only.
    if (code === undefined && statusOf(at) === undefined && typeof message === 'string' && isNetworkMessage(message)) return true;
    // A cause with a status of its own is an answer, not a lost connection.
    if (statusOf(cause) !== undefined) return false;
    at = cause;
  }
  return false;
}

/**
 * The network error code of a failure where the request never reached the service, if it is one. The
 * batch error of @azure/cosmos 4.9 keeps only the message ("Batch request error: connect ECONNREFUSED
 * ..."), so the code is looked for there too.
 */
function notSentCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  if (typeof code === 'string' && NOT_SENT_CODES.has(code)) return code;
  const message = err instanceof Error ? err.message : '';
  return [...NOT_SENT_CODES].find((c) => new RegExp(`\\b${c}\\b`).test(message));
}

/** What a failed batch request tells about itself. */
export interface BatchFailure {
  /** The service's answer to the last attempt; undefined when none came (connection lost, timeout). */
  status?: number;
  /** Worth sending again. */
  transient: boolean;
  /** The service may have applied the batch although the client got no success. */
  outcomeUnknown: boolean;
}

/**
 * Classifies what `items.batch` threw. @azure/cosmos 4.9 rethrows every batch failure as a plain
 * `Error("Batch request error: ...")`, dropping the status, but it attaches the call's diagnostics: every
 * answer the client received is a gateway statistic, and every attempt its own policies retried is a failed
 * attempt. When the last attempt has no answer, the connection failed or timed out, possibly after the
 * service had applied the batch.
 */
export function classifyBatchFailure(err: unknown): BatchFailure {
  const { answered, retried } = batchAttempts((err as { diagnostics?: CosmosDiagnostics } | null)?.diagnostics);
  let status = statusOf(err); // in case a later SDK keeps it
  // Attempts the SDK retried after an answer are among the answers too; network failures are not.
  const retriedAfterAnswer = retried.filter((s) => typeof s === 'number').length;
  if (status === undefined && answered.length > retriedAfterAnswer) status = answered[answered.length - 1];
  const sdkRetriedUnknown = hadUnknownOutcome(retried);
  // No answer: a connection that never reached the service (refused, unresolved) sent nothing, so the
  // batch surely was not applied unless an earlier attempt of the SDK's may have been; anything else
  // (reset, timeout) may have been lost after the service ran it.
  if (status === undefined) return { transient: true, outcomeUnknown: notSentCode(err) === undefined || sdkRetriedUnknown };
  return {
    status,
    transient: TRANSIENT_STATUSES.has(status),
    outcomeUnknown: UNKNOWN_OUTCOME_STATUSES.has(status) || sdkRetriedUnknown,
  };
}

/**
 * True when @azure/cosmos itself retried the batch after an attempt that may have been applied (it does
 * so for writes after a 503 or a timeout on accounts with per-partition automatic failover). A 409 on the
 * retry can then be the echo of our own first attempt.
 */
export function sdkRetriedUnknownOutcome(diagnostics: CosmosDiagnostics | undefined): boolean {
  return hadUnknownOutcome(batchAttempts(diagnostics).retried);
}

function hadUnknownOutcome(retried: ReadonlyArray<number | string | undefined>): boolean {
  // Only a 429, or a connection that never reached the service, proves the attempt was not applied.
  return retried.some((status) => status !== 429 && !(typeof status === 'string' && NOT_SENT_CODES.has(status)));
}

function batchAttempts(diagnostics: CosmosDiagnostics | undefined): {
  answered: number[];
  retried: Array<number | string | undefined>;
} {
  const stats = diagnostics?.clientSideRequestStatistics;
  const answered = (stats?.gatewayStatistics ?? []).filter((g) => g.operationType === 'batch').map((g) => g.statusCode ?? 0);
  const retried = (stats?.retryDiagnostics?.failedAttempts ?? [])
    .filter((a) => a.operationType === 'batch')
    .map((a) => a.statusCode as number | string | undefined);
  return { answered, retried };
}
