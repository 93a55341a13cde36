import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { randomUUID } from 'node:crypto';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

/**
 * What a Cosmos DB request does, read from its path and headers the way the gateway reads them:
 * - `batch`: a transactional batch (`x-ms-cosmos-is-batch-request`);
 * - `query`: a query (`x-ms-documentdb-isquery`); `query-plan`: the plan request @azure/cosmos sends beside it;
 * - `read`: a point read of one item; `feed`: a read of an item feed (read-all or change feed);
 * - `write`: create, upsert, replace or patch of one item; `delete`: delete of one item;
 * - `metadata`: everything that is not about items (account, databases, containers, partition key ranges).
 */
export type CosmosRequestKind = 'batch' | 'query' | 'query-plan' | 'read' | 'feed' | 'write' | 'delete' | 'metadata';

/** A request as the rules see it. */
export interface ProxiedRequest {
  kind: CosmosRequestKind;
  method: string;
  /** URL path without the query string, e.g. `/dbs/db/colls/events/docs`. */
  path: string;
  /** The partition key value the request names (`x-ms-documentdb-partitionkey`), as a string. */
  partitionKey?: string;
  headers: IncomingHttpHeaders;
}

/**
 * What a firing rule does to a request:
 * - `latency`: waits `ms`, and until `until` settles when given (to hold a request while a test acts), then
 *   forwards the request as usual;
 * - `status`: answers `status` (e.g. 429 with `retryAfterMs`, 503, 408, 410 with `subStatus` 1002), the
 *   sub-status in `x-ms-substatus` when given. `when: 'before'` (default): the
 *   server never sees the request; `when: 'after'`: the server executes it and its answer is thrown away;
 * - `reset`: resets the client's connection. `when: 'before'`: the server never sees the request;
 *   `when: 'after'`: the server executes it, the client never gets the answer (a lost acknowledgement).
 * - `truncate`: the server executes the request; the client gets its status line, its headers (with the
 *   full `content-length`) and only the first `fraction` of its body (default 0.5, at least one byte short
 *   of the whole), then the connection is closed: an answer cut mid-body, which @azure/cosmos surfaces as
 *   `Error reading response as text: aborted`. An answer without a body is reset before its headers.
 */
export type FaultAction =
  | { type: 'latency'; ms?: number; until?: PromiseLike<unknown> }
  | { type: 'status'; status: number; retryAfterMs?: number; subStatus?: number; when?: 'before' | 'after' }
  | { type: 'reset'; when: 'before' | 'after' }
  | { type: 'truncate'; fraction?: number };

/**
 * A per-request rule. A request matches when every given criterion holds; the first matching rule that
 * fires decides its fate, and a request no rule fires on is forwarded untouched.
 */
export interface FaultRule {
  /** One kind or several. */
  kind?: CosmosRequestKind | readonly CosmosRequestKind[];
  /** HTTP method, any case. */
  method?: string;
  /** The exact URL path, or a pattern tested against it. */
  path?: string | RegExp;
  /** Any other condition. */
  match?: (request: ProxiedRequest) => boolean;
  /** Fires at most this many times, then never again. Default: no limit. */
  times?: number;
  /** Fires on a matching request with this probability, drawn from the proxy's seeded generator. Default 1. */
  probability?: number;
  action: FaultAction;
}

/** A rule once added: how often it fired, and how to take it out. */
export interface ActiveRule {
  readonly rule: FaultRule;
  readonly fired: number;
  remove(): void;
}

/** One request as the proxy handled it. */
export interface ProxyRecord {
  /** Arrival order, from 1. */
  seq: number;
  kind: CosmosRequestKind;
  method: string;
  path: string;
  partitionKey?: string;
  /**
   * What the client got: an HTTP status, `'reset'` for a reset connection, `'truncated'` for an answer cut
   * mid-body, `'pending'` while in flight.
   */
  status: number | 'reset' | 'truncated' | 'pending';
  /** The fault injected, if any. */
  fault?: FaultAction['type'];
  /** The server's answer when the request reached it (also when the client never saw it). */
  upstreamStatus?: number;
  /** Milliseconds since the proxy started, at arrival and at the answer (or reset). */
  receivedAt: number;
  answeredAt?: number;
}

export interface FaultProxyOptions {
  /** The server to forward to, e.g. an `EmbeddedCosmos` endpoint (http), or a real account (https, verified). */
  target: string;
  /** Seed of the generator behind `probability`: the same seed draws the same sequence. Default 1. */
  seed?: number;
  /**
   * Point the account document's read and write locations at the proxy (default true). Without it
   * @azure/cosmos sends every request after the first to the locations the server advertises, past the proxy.
   */
  rewriteAccountLocations?: boolean;
  /** Fields merged into the account document the client reads (`GET /`), to make it believe in features. */
  accountOverrides?: Record<string, unknown>;
  /**
   * The `x-ms-request-charge` each forwarded answer carries (the embedded server charges nothing), for tests
   * of what request units are reported: a number for every answer, or one per request.
   */
  requestCharge?: number | ((request: ProxiedRequest) => number);
}

export interface FaultProxy {
  /** `http://127.0.0.1:<port>`: give it to `CosmosClient` in place of the server's endpoint. */
  readonly endpoint: string;
  /** Every request so far, in arrival order. */
  readonly records: readonly ProxyRecord[];
  addRule(rule: FaultRule): ActiveRule;
  clearRules(): void;
  clearRecords(): void;
  /** How many recorded requests satisfy `filter` (all when absent). */
  count(
    filter?: Partial<Pick<ProxyRecord, 'kind' | 'method' | 'status' | 'fault' | 'partitionKey'>> | ((r: ProxyRecord) => boolean),
  ): number;
  /**
   * Resolves once no request has been in flight for `quietMs` (default 25): requests the SDK sends in
   * parallel with a call (a query plan) may still be on their way when the call resolves.
   */
  settle(quietMs?: number): Promise<void>;
  close(): Promise<void>;
}

// Headers of one hop only (RFC 9110 §7.6.1); the proxy sets its own framing.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'content-length',
]);

const REASONS: Record<number, string> = { 408: 'RequestTimeout', 429: 'TooManyRequests', 503: 'ServiceUnavailable' };

/** The kind of a Cosmos DB request, from its method, path and headers. */
export function requestKind(method: string, path: string, headers: IncomingHttpHeaders): CosmosRequestKind {
  const flag = (name: string) => String(headers[name] ?? '').toLowerCase() === 'true';
  const segments = path.split('/').filter(Boolean);
  // Item resources are /dbs/{db}/colls/{coll}/docs[/{id}].
  if (segments[0] !== 'dbs' || segments[2] !== 'colls' || segments[4] !== 'docs') return 'metadata';
  const item = segments.length > 5;
  const verb = method.toUpperCase();
  if (!item && verb === 'POST') {
    if (flag('x-ms-cosmos-is-batch-request')) return 'batch';
    if (flag('x-ms-cosmos-is-query-plan-request')) return 'query-plan';
    if (flag('x-ms-documentdb-isquery')) return 'query';
    return 'write';
  }
  if (verb === 'GET') return item ? 'read' : 'feed';
  if (verb === 'DELETE') return 'delete';
  return 'write';
}

/**
 * Starts an HTTP proxy on loopback in front of a Cosmos DB wire-protocol server (the embedded one), which
 * injects faults by rule and records every request, for tests and benchmarks. The account document is
 * rewritten so that the client keeps talking to the proxy.
 *
 * @example
 * const cosmos = await startEmbeddedCosmos();
 * const proxy = await startFaultProxy({ target: cosmos.endpoint, seed: 7 });
 * const client = new CosmosClient({ endpoint: proxy.endpoint, key: cosmos.key });
 * proxy.addRule({ kind: 'batch', times: 1, action: { type: 'reset', when: 'after' } }); // a lost acknowledgement
 * proxy.addRule({ kind: 'query', probability: 0.1, action: { type: 'status', status: 429, retryAfterMs: 5 } });
 * // ...
 * console.log(proxy.count({ kind: 'batch' }));
 * await proxy.close();
 */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  // https: a real account or the emulator behind the proxy (the live suites); its certificate is verified.
  if (target.protocol !== 'http:' && target.protocol !== 'https:') {
    throw new Error(`startFaultProxy: target must be an http:// or https:// endpoint, got ${target.protocol}`);
  }
  const secure = target.protocol === 'https:';
  const random = seededRandom(options.seed ?? 1);
  const rewrite = options.rewriteAccountLocations ?? true;
  const upstream = secure ? new HttpsAgent({ keepAlive: true }) : new Agent({ keepAlive: true });
  const started = performance.now();
  const rules: Array<{ rule: FaultRule; fired: number }> = [];
  let records: ProxyRecord[] = [];
  let seq = 0;
  let inFlight = 0;
  let lastActivity = performance.now();
  let endpoint = '';
  const sockets = new Set<Socket>();

  const elapsed = () => Math.round((performance.now() - started) * 1000) / 1000;

  function pick(request: ProxiedRequest): FaultAction | undefined {
    for (const entry of rules) {
      const { rule } = entry;
      if (rule.times !== undefined && entry.fired >= rule.times) continue;
      if (!matches(rule, request)) continue;
      if (rule.probability !== undefined && random() >= rule.probability) continue;
      entry.fired++;
      return rule.action;
    }
    return undefined;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const url = new URL(req.url ?? '/', 'http://proxy');
    const method = req.method ?? 'GET';
    const request: ProxiedRequest = {
      kind: requestKind(method, url.pathname, req.headers),
      method,
      path: url.pathname,
      partitionKey: partitionKeyOf(req.headers),
      headers: req.headers,
    };
    const record: ProxyRecord = {
      seq: ++seq,
      kind: request.kind,
      method,
      path: url.pathname,
      partitionKey: request.partitionKey,
      status: 'pending',
      receivedAt: elapsed(),
    };
    records.push(record);
    const action = pick(request);
    if (action) record.fault = action.type;

    const reset = () => {
      record.status = 'reset';
      record.answeredAt = elapsed();
      // RST rather than FIN: the client sees ECONNRESET, as on a dropped connection.
      req.socket.resetAndDestroy();
    };
    const answer = (status: number, headers: Record<string, string | string[]>, payload: Buffer) => {
      record.status = status;
      record.answeredAt = elapsed();
      res.writeHead(status, { ...headers, 'content-length': String(payload.length) });
      res.end(payload);
    };
    const truncate = (status: number, headers: Record<string, string | string[]>, payload: Buffer, fraction: number) => {
      if (payload.length === 0) return reset();
      const sent = Math.min(payload.length - 1, Math.floor(payload.length * fraction));
      res.writeHead(status, { ...headers, 'content-length': String(payload.length) });
      // Headers and the part of the body go out before the reset, so the client sees a body that stops short.
      res.write(payload.subarray(0, sent), () => {
        record.status = 'truncated';
        record.answeredAt = elapsed();
        // A close (FIN) rather than a reset: a reset may discard what the client has not read yet, and
        // then it would see a reset, not a body cut short.
        req.socket.destroy();
      });
    };
    const fault = (status: number, retryAfterMs: number | undefined, subStatus?: number) => {
      const headers: Record<string, string> = { 'content-type': 'application/json', 'x-ms-activity-id': randomUUID() };
      if (retryAfterMs !== undefined) headers['x-ms-retry-after-ms'] = String(retryAfterMs);
      if (subStatus !== undefined) headers['x-ms-substatus'] = String(subStatus);
      const payload = { code: REASONS[status] ?? String(status), message: `fault proxy: injected ${status}` };
      answer(status, headers, Buffer.from(JSON.stringify(payload)));
    };

    if (action?.type === 'latency') {
      if (action.ms) await sleep(action.ms);
      if (action.until) await action.until;
    }
    if (action?.type === 'reset' && action.when === 'before') return reset();
    if (action?.type === 'status' && action.when !== 'after') return fault(action.status, action.retryAfterMs, action.subStatus);

    let response: { status: number; headers: IncomingHttpHeaders; body: Buffer };
    try {
      response = await forward(req, url, body);
    } catch {
      // The server dropped the connection: so does the proxy, as a network between them would.
      return reset();
    }
    record.upstreamStatus = response.status;
    if (action?.type === 'reset') return reset();
    if (action?.type === 'status') return fault(action.status, action.retryAfterMs, action.subStatus);

    let payload = response.body;
    if (method === 'GET' && url.pathname === '/' && response.status === 200) {
      payload = Buffer.from(JSON.stringify(rewriteAccount(JSON.parse(payload.toString('utf8')) as Record<string, unknown>)));
    }
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(response.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    }
    if (options.requestCharge !== undefined) {
      const charge = typeof options.requestCharge === 'number' ? options.requestCharge : options.requestCharge(request);
      headers['x-ms-request-charge'] = String(charge);
    }
    if (action?.type === 'truncate') return truncate(response.status, headers, payload, action.fraction ?? 0.5);
    answer(response.status, headers, payload);
  }

  function rewriteAccount(account: Record<string, unknown>): Record<string, unknown> {
    const out = { ...account, ...options.accountOverrides };
    if (!rewrite) return out;
    for (const field of ['writableLocations', 'readableLocations']) {
      const locations = out[field];
      if (Array.isArray(locations)) {
        out[field] = locations.map((location: Record<string, unknown>) => ({ ...location, databaseAccountEndpoint: `${endpoint}/` }));
      }
    }
    return out;
  }

  function forward(
    req: IncomingMessage,
    url: URL,
    body: Buffer,
  ): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    }
    headers.host = target.host;
    headers['content-length'] = String(body.length);
    return new Promise((resolve, reject) => {
      const out = (secure ? httpsRequest : httpRequest)(
        { host: target.hostname, port: target.port, method: req.method, path: url.pathname + url.search, headers, agent: upstream },
        (response) => {
          readBody(response).then(
            (data) => resolve({ status: response.statusCode ?? 502, headers: response.headers, body: data }),
            reject,
          );
        },
      );
      out.once('error', reject);
      out.end(body);
    });
  }

  const server = createServer((req, res) => {
    inFlight++;
    lastActivity = performance.now();
    handle(req, res)
      .catch(() => {
        // The client went away mid-request (its own timeout or abort): nothing left to answer.
        if (!req.socket.destroyed) req.socket.destroy();
      })
      .finally(() => {
        inFlight--;
        lastActivity = performance.now();
      });
  });
  // Idle keep-alive connections stay open as long as the client wants them: a proxy that closed them on its
  // own would inject resets nobody asked for.
  server.keepAliveTimeout = 0;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    endpoint,
    get records() {
      return records;
    },
    addRule(rule) {
      checkRule(rule);
      const entry = { rule, fired: 0 };
      rules.push(entry);
      return {
        rule,
        get fired() {
          return entry.fired;
        },
        remove() {
          const i = rules.indexOf(entry);
          if (i >= 0) rules.splice(i, 1);
        },
      };
    },
    clearRules() {
      rules.length = 0;
    },
    clearRecords() {
      records = [];
    },
    count(filter) {
      if (!filter) return records.length;
      if (typeof filter === 'function') return records.filter(filter).length;
      return records.filter((r) => Object.entries(filter).every(([key, value]) => r[key as keyof ProxyRecord] === value)).length;
    },
    async settle(quietMs = 25) {
      while (inFlight > 0 || performance.now() - lastActivity < quietMs) await sleep(5);
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        for (const socket of sockets) socket.destroy();
        upstream.destroy();
      }),
  };
}

function partitionKeyOf(headers: IncomingHttpHeaders): string | undefined {
  const raw = headers['x-ms-documentdb-partitionkey'];
  if (typeof raw !== 'string') return undefined;
  try {
    const parsed: unknown = JSON.parse(raw);
    const value = Array.isArray(parsed) ? parsed[0] : parsed;
    return typeof value === 'string' ? value : JSON.stringify(value);
  } catch {
    return raw;
  }
}

function matches(rule: FaultRule, request: ProxiedRequest): boolean {
  if (rule.kind !== undefined) {
    const kinds: readonly CosmosRequestKind[] = typeof rule.kind === 'string' ? [rule.kind] : rule.kind;
    if (!kinds.includes(request.kind)) return false;
  }
  if (rule.method !== undefined && rule.method.toUpperCase() !== request.method.toUpperCase()) return false;
  if (typeof rule.path === 'string' && rule.path !== request.path) return false;
  if (rule.path instanceof RegExp && !rule.path.test(request.path)) return false;
  return rule.match ? rule.match(request) : true;
}

function checkRule(rule: FaultRule): void {
  const { times, probability, action } = rule;
  if (times !== undefined && (!Number.isSafeInteger(times) || times < 0)) throw new Error('FaultRule.times must be a non-negative integer');
  if (probability !== undefined && !(probability >= 0 && probability <= 1)) throw new Error('FaultRule.probability must be within 0..1');
  if (action.type === 'latency' && action.ms !== undefined && !(action.ms >= 0)) throw new Error('FaultRule latency ms must be >= 0');
  if (action.type === 'truncate' && action.fraction !== undefined && !(action.fraction >= 0 && action.fraction < 1)) {
    throw new Error('FaultRule truncate fraction must be within 0..1 (1 excluded)');
  }
  if (action.type === 'status' && !(Number.isInteger(action.status) && action.status >= 400 && action.status <= 599)) {
    throw new Error('FaultRule status must be an HTTP error status (400-599)');
  }
}

/** mulberry32: a small, fast generator whose sequence is fixed by its 32-bit seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function readBody(stream: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
