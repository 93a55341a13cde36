import { CosmosStartupTimeoutError, messageOf, statusOf } from 'nest-cosmos-eventstore';
import { DEFAULT_PORT } from './app.config.js';
import { EnvValidationError, type Env } from 'nest-cosmos-eventstore/config';
import { PortUnavailableError } from './port-check.js';

// Errors of the connection itself (DNS, TCP, TLS): the endpoint is wrong or unreachable from here.
const UNREACHABLE = /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EPROTO|CERT_|ERR_TLS_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_)/;

/**
 * The one line `main.ts` logs when the service cannot start: the variable to fix when the environment is to
 * blame (a malformed value, a taken port, an endpoint that does not answer or resolve, credentials the account
 * refuses, a Microsoft Entra ID sign-in that fails), and never the key, even should a library quote it.
 *
 * @example
 * bootstrap().catch((err) => logger.error(`start-up failed: ${describeStartupFailure(err, process.env)}`));
 */
export function describeStartupFailure(err: unknown, env: Env): string {
  return oneLine(describe(err, env));
}

function describe(err: unknown, env: Env): string {
  const message = oneLine(redact(messageOf(err), env.COSMOS_KEY));
  if (err instanceof EnvValidationError || err instanceof PortUnavailableError) return message;
  const code = codeOf(err);
  // The HTTP server's own listen (should the port be taken between the check and it).
  if (code === 'EADDRINUSE' || code === 'EACCES') return new PortUnavailableError(portOf(env), code).message;
  const endpoint = env.COSMOS_ENDPOINT;
  if (!endpoint) return message;
  const at = `Cosmos DB at ${originOf(endpoint)}`;
  if (!env.COSMOS_KEY) {
    if (/@azure\/identity, which is not installed/.test(message)) {
      return (
        'COSMOS_KEY is not set and @azure/identity, which signs in without it (Microsoft Entra ID), is not ' +
        'installed: set COSMOS_KEY, or install @azure/identity (npm install @azure/identity)'
      );
    }
    if (isCredentialFailure(err)) {
      return (
        `${at}: signing in with Microsoft Entra ID failed (COSMOS_KEY is not set): set COSMOS_KEY, or give this ` +
        'process an identity DefaultAzureCredential finds (AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, ' +
        `a managed identity, az login) with a Cosmos DB data role. ${firstLine(messageOf(err))}`
      );
    }
  }
  const status = statusOf(err);
  if (status === 401) {
    const credential = env.COSMOS_KEY ? 'COSMOS_KEY (is it this account’s key?)' : 'the Microsoft Entra ID identity (COSMOS_KEY is not set)';
    return `${at} refused the credentials (401): check ${credential}. ${message}`;
  }
  if (status === 403) {
    return `${at} refused the request (403): check COSMOS_KEY or the identity’s role, and the account’s firewall. ${message}`;
  }
  if (code !== undefined && UNREACHABLE.test(code)) {
    return `${at} could not be reached (${code}): check COSMOS_ENDPOINT. ${message}`;
  }
  if (isNotCosmosAnswer(err)) {
    return (
      `${at} did not answer as Cosmos DB does (not JSON: is it a web page or another service?): check COSMOS_ENDPOINT, ` +
      `the account's URI (https://<account>.documents.azure.com:443/). ${message}`
    );
  }
  if (err instanceof CosmosStartupTimeoutError || (err instanceof Error && err.name === 'TimeoutError')) {
    return `${at} could not be used in time: check COSMOS_ENDPOINT (and COSMOS_STARTUP_TIMEOUT_SECONDS). ${message}`;
  }
  return message;
}

// What @azure/identity throws when no credential of the chain can sign in, or one is refused.
const CREDENTIAL_ERRORS = new Set(['CredentialUnavailableError', 'AuthenticationError', 'AggregateAuthenticationError']);

function isCredentialFailure(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { name, message } = e as { name?: unknown; message?: unknown };
    if (typeof name === 'string' && CREDENTIAL_ERRORS.has(name)) return true;
    if (typeof message === 'string' && /\b(ChainedTokenCredential|DefaultAzureCredential)\b.*\bfailed\b/.test(message)) return true;
  }
  return false;
}

/** An answer the SDK could not read as JSON (an HTML page, a proxy's text): the endpoint is not a Cosmos DB account. */
function isNotCosmosAnswer(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof SyntaxError) return true;
    const { message } = e as { message?: unknown };
    if (typeof message === 'string' && /Unexpected token .* is not valid JSON|Unexpected end of JSON input/.test(message)) return true;
  }
  return false;
}

function portOf(env: Env): number {
  const port = Number(env.PORT);
  return Number.isSafeInteger(port) && port > 0 ? port : DEFAULT_PORT;
}

function firstLine(message: string): string {
  return message.split('\n', 1)[0].trim();
}

/** The log line must stay one line, whatever an SDK puts in its messages. */
function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}

function originOf(endpoint: string): string {
  try {
    return new URL(endpoint).origin;
  } catch {
    return 'COSMOS_ENDPOINT';
  }
}

/** The network error code of an error or of its causes (`ECONNREFUSED`, `ENOTFOUND`...). */
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
