/**
 * The service's rules for request input, one per concern and the same on every route: query parameters
 * (known names only, each given once, never empty), page sizes, continuation tokens (bound to the query
 * that issued them), JSON bodies (known fields only) and the `x-actor` header (UTF-8, bounded). Each refusal
 * is a `ValidationError` naming the parameter, which the routes' filter answers 400 as JSON.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ValidationError } from 'nest-cosmos-eventstore';

/** Query parameters as express parses them: a repeated parameter comes as an array (an object too, from `a[b]=`). */
export type QueryParams = Record<string, unknown>;

/** Items per page when `limit` is not given, and the most a page may ask for, on every list route. */
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;

/** Longest `x-actor`, in characters (code points), as for the other free texts of the service. */
export const MAX_ACTOR_LENGTH = 200;

/**
 * The query parameters of a route, checked: only `allowed` names; each value a single, non-empty string
 * (a repeated parameter, `a[b]=` or an empty value is refused rather than guessed at).
 */
export function queryParams<K extends string>(params: QueryParams, allowed: readonly K[]): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  for (const [name, value] of Object.entries(params ?? {})) {
    if (!(allowed as readonly string[]).includes(name)) {
      throw new ValidationError(name, `is not a query parameter here; use ${allowed.length > 0 ? allowed.join(', ') : 'none'}`);
    }
    if (Array.isArray(value)) throw new ValidationError(name, 'must be given once');
    if (typeof value !== 'string') throw new ValidationError(name, 'must be a plain value (no [ ] in the parameter name)');
    if (value === '') throw new ValidationError(name, 'must not be empty; leave the parameter out instead');
    out[name as K] = value;
  }
  return out;
}

/** A whole number of at least `min` (and at most `max`), written in plain digits. */
export function integerParam(name: string, value: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined;
  const n = /^\d{1,16}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ValidationError(name, max === Number.MAX_SAFE_INTEGER ? `must be an integer of at least ${min}` : `must be an integer from ${min} to ${max}`);
  }
  return n;
}

/** `limit` of a list route: 1 to `MAX_PAGE_SIZE`, `DEFAULT_PAGE_SIZE` when absent. */
export function pageLimit(value: string | undefined): number {
  return integerParam('limit', value, 1, MAX_PAGE_SIZE) ?? DEFAULT_PAGE_SIZE;
}

// A token carries the digest of the query that issued it: the store's own token only says where a page
// ended, and read against another query it would silently skip or repeat items. And a checksum of the
// whole: an altered token (a character appended, changed or dropped) must be refused, not handed to the
// store, which may read it as "from the start" or fail on it (Cosmos DB sends it as a header).
const SCOPE_BYTES = 12;
const CHECK_BYTES = 12;
const HEAD_BYTES = SCOPE_BYTES + CHECK_BYTES;

function scopeDigest(scope: readonly unknown[]): Buffer {
  return createHash('sha256').update(JSON.stringify(scope)).digest().subarray(0, SCOPE_BYTES);
}

function checksum(scopeBytes: Buffer, storeBytes: Buffer): Buffer {
  return createHash('sha256').update('continuationToken\0').update(scopeBytes).update(storeBytes).digest().subarray(0, CHECK_BYTES);
}

/** The continuation token handed to the client: the store's token, bound to `scope` (what the query asked). */
export function issueToken(scope: readonly unknown[], storeToken: string | undefined): string | undefined {
  if (storeToken === undefined || storeToken === '') return undefined;
  const scopeBytes = scopeDigest(scope);
  const storeBytes = Buffer.from(storeToken, 'utf8');
  return Buffer.concat([scopeBytes, checksum(scopeBytes, storeBytes), storeBytes]).toString('base64url');
}

/**
 * The store's token inside a client's `continuationToken`; 400 unless this service issued it for `scope`,
 * exactly as it is: the base64url text as written (no padding, no other spelling of the same bytes) and
 * its checksum intact.
 */
export function acceptToken(scope: readonly unknown[], token: string | undefined): string | undefined {
  if (token === undefined) return undefined;
  const bytes = /^[A-Za-z0-9_-]+$/.test(token) ? Buffer.from(token, 'base64url') : Buffer.alloc(0);
  // Base64url has several spellings of the same bytes (the last character's unused bits, a dangling one):
  // only the one this service writes is its token.
  const exact = bytes.length > HEAD_BYTES && bytes.toString('base64url') === token;
  if (!exact) throw new ValidationError('continuationToken', 'is not a token this service issued');
  const scopeBytes = bytes.subarray(0, SCOPE_BYTES);
  const storeBytes = bytes.subarray(HEAD_BYTES);
  if (!timingSafeEqual(bytes.subarray(SCOPE_BYTES, HEAD_BYTES), checksum(scopeBytes, storeBytes))) {
    throw new ValidationError('continuationToken', 'is not a token this service issued (altered or cut): send it as the previous page gave it');
  }
  if (!scopeBytes.equals(scopeDigest(scope))) {
    throw new ValidationError(
      'continuationToken',
      'was issued for another query: send it with the same parameters (limit aside) as the request that answered it',
    );
  }
  return storeBytes.toString('utf8');
}

/**
 * A JSON object body with only the `allowed` fields (a misspelt field is refused rather than ignored, so
 * `{ "quantiy": 2 }` does not become a default); `required: false` also takes no body at all.
 */
export function bodyFields<K extends string>(
  body: unknown,
  allowed: readonly K[],
  { required = true }: { required?: boolean } = {},
): Partial<Record<K, unknown>> {
  const shape = allowed.length > 0 ? `{ ${allowed.join(', ')} }` : 'no body (or {})';
  if (body === undefined && !required) return {};
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    const given = body === null ? 'null' : Array.isArray(body) ? 'an array' : `a ${typeof body}`;
    throw new ValidationError(
      'body',
      allowed.length > 0
        ? `must be a JSON object { ${allowed.join(', ')} } sent with content-type application/json, not ${given}`
        : `must be empty or {}, not ${given}`,
    );
  }
  const unknown = Object.keys(body).find((k) => !(allowed as readonly string[]).includes(k));
  if (unknown !== undefined) throw new ValidationError(unknown, `is not a field of this request; send ${shape}`);
  return body as Partial<Record<K, unknown>>;
}

/**
 * Whether `text` holds a control character: C0 (a tab included: ids and actors are names, not text with
 * layout), DEL or C1. One in an id or a name makes every log line, URL and export that shows it ambiguous.
 */
export function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return true;
  }
  return false;
}

/** Longest id in a path of the orders API (`:id`, `:sku`, a customer's id): the commands' own bound. */
export const MAX_PATH_ID_LENGTH = 200;

/**
 * The one id rule of every route (orders, raw aggregates, materialized documents, protosource): well-formed
 * Unicode, no control character anywhere, and not `.` or `..` as a whole (WHATWG URL clients turn
 * `/orders/%2E%2E` into `/`, so such an id could never be addressed again). A `/` inside is kept: stream
 * ids such as `Order/o-1` hold one. Refused as a `ValidationError` naming `field`.
 */
export function checkId(field: string, value: string): string {
  if (!value.isWellFormed()) throw new ValidationError(field, 'must be well-formed Unicode (no lone surrogates)');
  if (hasControlCharacter(value)) throw new ValidationError(field, 'must not contain control characters');
  if (value === '.' || value === '..') throw new ValidationError(field, 'must not be "." or "..": URL clients cannot address such a path');
  return value;
}

/**
 * An id from the path (already percent-decoded) of the orders API: at most `MAX_PATH_ID_LENGTH` characters
 * and `checkId`; what the commands accept when they create one, so no such id can exist. Refused as 400
 * naming `field`, rather than as a store error naming an internal key.
 */
export function pathId(field: string, value: string): string {
  if (value.length > MAX_PATH_ID_LENGTH) throw new ValidationError(field, `is ${value.length} characters; at most ${MAX_PATH_ID_LENGTH}`);
  return checkId(field, value);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Who acts, from the `x-actor` header: `fallback` (`anonymous`) when absent or blank. Node hands header values over as
 * latin1 (one character per byte), so the bytes are read back and decoded as UTF-8 (`zoë` stays `zoë`);
 * bytes that are not UTF-8, control characters, a repeated header or more than `MAX_ACTOR_LENGTH`
 * characters are refused, naming `x-actor`.
 */
export function actorOf(request: IncomingMessage, fallback = 'anonymous'): string {
  // Node joins a repeated header into one value ("a, b"): count the names as they came.
  const given = request.rawHeaders.filter((name, i) => i % 2 === 0 && name.toLowerCase() === 'x-actor').length;
  if (given > 1) throw new ValidationError('x-actor', 'must be given once');
  const value = request.headers['x-actor'];
  if (typeof value !== 'string') return fallback;
  let actor: string;
  try {
    actor = utf8.decode(Buffer.from(value, 'latin1')).trim();
  } catch {
    throw new ValidationError('x-actor', 'must be UTF-8 text');
  }
  if (actor === '') return fallback;
  if (hasControlCharacter(actor)) throw new ValidationError('x-actor', 'must not contain control characters');
  const length = [...actor].length;
  if (length > MAX_ACTOR_LENGTH) throw new ValidationError('x-actor', `is ${length} characters; at most ${MAX_ACTOR_LENGTH}`);
  return actor;
}
