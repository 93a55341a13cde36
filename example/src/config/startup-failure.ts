import { messageOf, statusOf } from 'nest-cosmos-eventstore';
import { EnvValidationError, type Env } from './env-reader.js';

// Errors of the connection itself (DNS, TCP, TLS): the endpoint is wrong or unreachable from here.
const UNREACHABLE = /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EPROTO|CERT_|ERR_TLS_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_)/;

/**
 * The one line `main.ts` logs when the service cannot start: the variable to fix when the environment is to
 * blame (a malformed value, an endpoint that does not answer, credentials the account refuses), and never
 * the key, even should a library quote it.
 *
 * @example
 * bootstrap().catch((err) => logger.error(`start-up failed: ${describeStartupFailure(err, process.env)}`));
 */
export function describeStartupFailure(err: unknown, env: Env): string {
  const message = redact(messageOf(err), env.COSMOS_KEY);
  if (err instanceof EnvValidationError) return message;
  const endpoint = env.COSMOS_ENDPOINT;
  if (!endpoint) return message;
  const at = `Cosmos DB at ${originOf(endpoint)}`;
  const status = statusOf(err);
  if (status === 401) {
    const credential = env.COSMOS_KEY ? 'COSMOS_KEY (is it this account’s key?)' : 'the Microsoft Entra ID identity (COSMOS_KEY is not set)';
    return `${at} refused the credentials (401): check ${credential}. ${message}`;
  }
  if (status === 403) {
    return `${at} refused the request (403): check COSMOS_KEY or the identity’s role, and the account’s firewall. ${message}`;
  }
  const code = codeOf(err);
  if ((code !== undefined && UNREACHABLE.test(code)) || (err instanceof Error && err.name === 'TimeoutError')) {
    return `${at} could not be reached (${code ?? 'timeout'}): check COSMOS_ENDPOINT. ${message}`;
  }
  return message;
}

function originOf(endpoint: string): string {
  try {
    return new URL(endpoint).origin;
  } catch {
    return 'COSMOS_ENDPOINT';
  }
}

/** The network error code of an error or of its cause (`ECONNREFUSED`, `ENOTFOUND`...). */
function codeOf(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code } = e as { code?: unknown };
    if (typeof code === 'string') return code;
  }
  return undefined;
}

function redact(message: string, key: string | undefined): string {
  return key ? message.split(key).join('[COSMOS_KEY]') : message;
}
