import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import {
  Account,
  batchDocuments,
  createDocument,
  documentOperations,
  parsePartitionKey,
  patchDocument,
  patchOperation,
  queryDocuments,
  readDocuments,
  readItems,
  readMeta,
  readPartitionKeyRanges,
  replaceDocument,
  route,
  type BatchOperation,
  type OperationResult,
  type ServerAccount,
  type ServerCollection,
  type ServerDocument,
  upsertDocument,
} from './cosmosdb-server-internals.js';
import { ChangeFeeds, type FeedAnswer } from './change-feed.js';
import type { PartitionKeyRange } from './partition-key-ranges.js';
import { makeQueriesLinear } from './linear-queries.js';

/** Cosmos DB's item and request limit, enforced here as the service does (the bare server accepts anything). */
const MAX_BYTES = 2 * 1024 * 1024;

/** An item's `ttl`, as Cosmos DB accepts it: -1 (never expires) or 1 to 2^31-1 seconds; absent: the container's. */
const MAX_ITEM_TTL = 2_147_483_647;

/** Why Cosmos DB would refuse this item's `ttl` (400), or undefined when it is acceptable or absent. */
function ttlProblem(item: unknown): string | undefined {
  if (item === null || typeof item !== 'object' || !('ttl' in item)) return undefined;
  const { ttl } = item as { ttl: unknown };
  if (ttl === -1 || (typeof ttl === 'number' && Number.isInteger(ttl) && ttl >= 1 && ttl <= MAX_ITEM_TTL)) return undefined;
  return `The value of ttl must be -1 or an integer from 1 to ${MAX_ITEM_TTL}, got ${JSON.stringify(ttl)}.`;
}

/**
 * The Cosmos DB emulator's published well-known key. The embedded server checks no signature; the SDK only
 * needs a well-formed key to sign with.
 */
const EMULATOR_KEY = 'C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==';

export interface EmbeddedCosmos {
  /** `http://127.0.0.1:<port>`: plain HTTP on loopback, so no TLS verification is turned off anywhere. */
  endpoint: string;
  key: string;
  /**
   * Splits a physical partition of a container now, as Cosmos DB does while a container grows: `rangeId` (by
   * default the range holding the most documents) leaves `GET .../pkranges`, two children with new ids and
   * `parents: [rangeId]` take its two EPK halves, and change feed requests still naming it are answered 410 Gone with
   * sub-status 1002, after which @azure/cosmos re-reads the ranges and goes on with the children. Each child
   * keeps the parent's change log of its half and its LSN sequence, so a continuation taken before the split
   * is valid on both. Throws for an unknown container or range.
   *
   * @example
   * const { parent, children } = cosmos.splitPartition('db', 'events');
   */
  splitPartition(databaseId: string, containerId: string, rangeId?: string): PartitionSplit;
  /**
   * Merges a physical partition (by id; by default the first) with its right neighbour, as Cosmos DB does
   * after throughput or storage shrink: requests naming either answer 410/1002 from then on.
   *
   * @example
   * const { parents, merged } = cosmos.mergePartitions('db', 'events');
   */
  mergePartitions(databaseId: string, containerId: string, leftRangeId?: string): PartitionMerge;
  /** Stops accepting requests and closes open connections. */
  close(): Promise<void>;
}

/** What `mergePartitions` did: the two ranges that went and the one that replaced them. */
export interface PartitionMerge {
  parents: [PartitionKeyRange, PartitionKeyRange];
  merged: PartitionKeyRange;
}

/** What `splitPartition` did: the range that went and the two that replaced it. */
export interface PartitionSplit {
  parent: PartitionKeyRange;
  children: [PartitionKeyRange, PartitionKeyRange];
}

export interface EmbeddedCosmosOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /**
   * Physical partitions (partition key ranges, hence feed ranges) of every container, 1 to 64. Default 1, as a
   * new container of modest throughput has on Cosmos DB; more to exercise code that reads feed ranges in
   * parallel. Documents are placed by the SDK's own partition key hash.
   */
  partitionKeyRanges?: number;
}

/**
 * Starts an in-process Cosmos DB wire-protocol server on loopback (data in memory only), built on
 * @vercel/cosmosdb-server with the gaps that would hide store bugs closed:
 * - atomic transactional batches are all-or-nothing, answered 207 with per-operation statuses (409/424)
 *   as Cosmos DB does, and run without yielding, so no reader sees part of one;
 * - a query sent with a partition key sees only that partition;
 * - items and requests over 2 MB are refused with 413;
 * - a 404 for a missing container carries sub-status 1003, as Cosmos DB's does;
 * - the account advertises its own HTTP endpoint, so the SDK needs no special options;
 * - an incremental latest-version change feed per partition key range (see `change-feed.ts`): ordered by
 *   commit, real continuations, 304 when nothing is new, a transactional batch's items on one page, and
 *   `partitionKeyRanges` physical partitions per container;
 * - an item `ttl` Cosmos DB would refuse (not -1 nor an integer from 1 to 2^31-1) is refused with 400;
 * - queries cost time linear in the documents scanned, not quadratic (see linear-queries.ts);
 * - a point read whose If-None-Match holds the item's etag answers 304 without a body;
 * - partitions split and merge on request (`splitPartition`, `mergePartitions`), answering change feed requests
 *   for a range that went 410/1002;
 * - a conditional patch checks its condition on the addressed item alone, as written (the library matched
 *   any item of that id in any partition, and lowercased the condition, string literals included).
 * Still not enforced: expiry itself (the store filters expired items), stored procedures.
 *
 * @example
 * const cosmos = await startEmbeddedCosmos();
 * const client = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key });
 * // ...
 * client.dispose();
 * await cosmos.close();
 */
export async function startEmbeddedCosmos(options: EmbeddedCosmosOptions = {}): Promise<EmbeddedCosmos> {
  const ranges = options.partitionKeyRanges ?? 1;
  if (!Number.isSafeInteger(ranges) || ranges < 1 || ranges > 64) {
    throw new Error(`startEmbeddedCosmos: partitionKeyRanges must be an integer from 1 to 64, got ${String(ranges)}`);
  }
  makeQueriesLinear();
  // The account's own endpoint (port) is never used: the metadata is answered from the Host header.
  const account = new Account('127.0.0.1', 0);
  const feeds = new ChangeFeeds(ranges);
  const server = createServer({ keepAlive: true }, (req, res) => {
    handle(account, feeds, req, res).catch((err: unknown) => {
      if (!res.headersSent) res.statusCode = 500;
      res.end(JSON.stringify({ message: err instanceof Error ? err.message : String(err) }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    key: EMULATOR_KEY,
    splitPartition(databaseId, containerId, rangeId) {
      const feed = feeds.of(account.database(databaseId).collection(containerId));
      if (!feed) throw new Error(`splitPartition: no container ${containerId} in database ${databaseId}`);
      return feed.split(rangeId);
    },
    mergePartitions(databaseId, containerId, leftRangeId) {
      const feed = feeds.of(account.database(databaseId).collection(containerId));
      if (!feed) throw new Error(`mergePartitions: no container ${containerId} in database ${databaseId}`);
      return feed.merge(leftRangeId);
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

async function handle(account: ServerAccount, feeds: ChangeFeeds, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const raw = await readBody(req);
  const matched = route(req);
  let body: unknown;
  if (!matched) {
    res.statusCode = 400;
    body = { message: 'no route' };
  } else if (raw.length > MAX_BYTES) {
    res.statusCode = 413;
    body = { code: 'RequestEntityTooLarge', message: `Request size ${raw.length} exceeds ${MAX_BYTES} bytes.` };
  } else {
    const [params, handler] = matched;
    // The library's handlers read the body themselves: hand them a replay of it.
    const replay = Object.assign(Readable.from([raw], { objectMode: false }), {
      headers: req.headers,
      method: req.method,
      url: req.url,
    }) as unknown as IncomingMessage;
    // Attached before any handler runs, so the container's change feed observes every write to it.
    const feed = params.collId ? feeds.of(account.database(params.dbId).collection(params.collId)) : undefined;
    const ttlRefused = (handler === createDocument || handler === upsertDocument || handler === replaceDocument) && ttlProblem(parseJson(raw));
    if (ttlRefused) {
      res.statusCode = 400;
      body = { code: 'BadRequest', message: ttlRefused };
    } else if (handler === readMeta) {
      body = advertiseHttp(account.read(), req);
    } else if (feed && handler === readDocuments && req.headers['a-im'] !== undefined) {
      body = answer(res, feed.read(req));
    } else if (feed && handler === readPartitionKeyRanges) {
      body = answer(res, feed.partitionKeyRanges());
    } else if (handler === batchDocuments && header(req, 'x-ms-cosmos-batch-atomic')?.toLowerCase() === 'true') {
      // One commit in the change feed when it succeeds, none when it rolls back.
      const run = () => atomicBatch(account, req, res, params, raw);
      if (!feed) body = run();
      else
        feed.transaction(() => {
          body = run();
          return res.statusCode < 300;
        });
    } else if (handler === patchDocument) {
      body = patch(account, req, res, params, raw);
    } else if (handler === queryDocuments && req.headers['x-ms-documentdb-partitionkey'] !== undefined) {
      body = await partitionScopedQuery(account, replay, res, params, raw);
    } else {
      body = await handler(account, replay, res, params);
      // A point read with If-None-Match holding the item's etag: 304 and no body, as Cosmos DB answers.
      const ifNoneMatch = header(req, 'if-none-match');
      if (req.method === 'GET' && params.docId && res.statusCode === 200 && ifNoneMatch !== undefined && (body as ServerDocument | undefined)?._etag === ifNoneMatch) {
        res.statusCode = 304;
        body = undefined;
      }
    }
    // Cosmos DB tells a missing container or database (sub-status 1003) from a missing item (0).
    if (res.statusCode === 404 && params.collId && !account.database(params.dbId).collection(params.collId).read()) {
      res.setHeader('x-ms-substatus', '1003');
    }
  }
  respond(res, body);
}

/** Mirrors the library's response wrapper, which is not exported. */
function respond(res: ServerResponse, body: unknown): void {
  const out = (body ?? {}) as Record<string, unknown>;
  if (res.statusCode > 399 && !out.message) out.message = '';
  if (typeof out._etag === 'string') res.setHeader('etag', out._etag);
  res.setHeader('content-type', 'application/json');
  res.setHeader('x-ms-activity-id', randomUUID());
  res.setHeader('x-ms-request-charge', '1');
  res.end(JSON.stringify(out));
}

function answer(res: ServerResponse, { status, headers, body }: FeedAnswer): Record<string, unknown> {
  res.statusCode = status;
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  return body;
}

function advertiseHttp(meta: Record<string, unknown>, req: IncomingMessage): Record<string, unknown> {
  const location = { name: 'embedded', databaseAccountEndpoint: `http://${req.headers.host}/` };
  return { ...meta, writableLocations: [location], readableLocations: [location] };
}

/**
 * A transactional batch as Cosmos DB runs it: operations in order; on the first failure every applied
 * operation is undone and the answer is 207 with the failing status and 424 for the rest. It runs
 * synchronously, so no other request observes an intermediate state.
 */
function atomicBatch(
  account: ServerAccount,
  req: IncomingMessage,
  res: ServerResponse,
  { dbId, collId }: Record<string, string>,
  raw: Buffer,
): unknown {
  const collection = account.database(dbId).collection(collId);
  if (!collection.read()) {
    res.statusCode = 404;
    return {};
  }
  const operations = parseJson(raw);
  if (!Array.isArray(operations)) {
    res.statusCode = 400;
    return { message: 'Invalid request body' };
  }
  const batchPartition = header(req, 'x-ms-documentdb-partitionkey');
  const partition = JSON.stringify(partitionValue(batchPartition) ?? null);
  const undo: Array<{ id: string; partition: unknown; before?: ServerDocument }> = [];
  const results: OperationResult[] = [];
  let failedAt = -1;
  for (const [i, input] of (operations as BatchOperation[]).entries()) {
    const op = { ...input, partitionKey: input.partitionKey ?? batchPartition };
    let result: OperationResult;
    let target: ReturnType<typeof targetOf>;
    try {
      target = targetOf(collection, op);
      // A batch is one logical partition: Cosmos DB refuses an operation on another.
      result =
        JSON.stringify(target?.partition ?? null) !== partition
          ? { statusCode: 400, body: { code: 'BadRequest', message: 'Partition key of the operation differs from the batch.' } }
          : applyOperation(collection, op);
    } catch {
      // The library throws on some malformed input (a bad partition key, say): a failure like any other.
      result = { statusCode: 400, body: { code: 'BadRequest', message: 'Malformed batch operation.' } };
    }
    if (result.statusCode >= 400) {
      failedAt = i;
      results.push(result);
      break;
    }
    if (target && op.operationType !== 'Read') undo.push(target);
    results.push(result);
  }
  if (failedAt >= 0) {
    for (const { id, partition, before } of undo.reverse()) {
      if (collection.document(id, partition).read()) collection.documents.delete(id, partition);
      if (before) collection.documents._set(before);
    }
    res.statusCode = 207;
    return operations.map((_, i) => ({ statusCode: i === failedAt ? results[i].statusCode : 424, requestCharge: 0 }));
  }
  res.statusCode = 200;
  return results.map((r) => ({
    statusCode: r.statusCode,
    requestCharge: 1,
    eTag: (r.body as ServerDocument | undefined)?._etag,
    resourceBody: r.body,
  }));
}

function applyOperation(collection: ServerCollection, op: BatchOperation): OperationResult {
  if (op.resourceBody && Buffer.byteLength(JSON.stringify(op.resourceBody)) > MAX_BYTES) {
    return { statusCode: 413, body: { code: 'RequestEntityTooLarge', message: 'Item exceeds 2 MB.' } };
  }
  const refusedTtl = ttlProblem(op.resourceBody);
  if (refusedTtl) return { statusCode: 400, body: { code: 'BadRequest', message: refusedTtl } };
  const run = {
    Create: documentOperations.createOperation,
    Upsert: documentOperations.upsertOperation,
    Read: documentOperations.readOperation,
    Delete: documentOperations.deleteOperation,
    Replace: documentOperations.replaceOperation,
  }[op.operationType ?? ''];
  if (!run) return { statusCode: 400, body: { message: `Operation type '${op.operationType}' is not supported in Batch.` } };
  return run(collection, op);
}

/** The document an operation touches and its state before, for undo. */
function targetOf(
  collection: ServerCollection,
  op: BatchOperation,
): { id: string; partition: unknown; before?: ServerDocument } | undefined {
  const id = op.resourceBody?.id ?? op.id;
  if (typeof id !== 'string') return undefined;
  const partition = op.resourceBody ? collection.documents._getPartition(op.resourceBody) : partitionValue(op.partitionKey);
  return { id, partition, before: collection.document(id, partition).read() };
}

/**
 * A patch as Cosmos DB runs it: its condition (`FROM c WHERE ...`) is evaluated on the addressed item, the
 * one of that id in that partition, and answered 412 when false. The library checked it with a query over
 * the whole container by id, so an item of the same id in another partition could satisfy it, and
 * lowercased it first. An item `ttl` Cosmos DB would refuse is refused here too.
 */
function patch(account: ServerAccount, req: IncomingMessage, res: ServerResponse, { dbId, collId, docId }: Record<string, string>, raw: Buffer): unknown {
  const collection = account.database(dbId).collection(collId);
  if (!collection.read()) {
    res.statusCode = 404;
    return {};
  }
  const spec = parseJson(raw) as unknown[] | { operations?: unknown; condition?: unknown } | undefined;
  const operations = Array.isArray(spec) ? spec : spec?.operations;
  const condition = Array.isArray(spec) ? undefined : spec?.condition;
  if (!Array.isArray(operations) || (condition !== undefined && typeof condition !== 'string')) {
    res.statusCode = 400;
    return { code: 'BadRequest', message: 'Invalid patch request: check syntax of patch specification.' };
  }
  for (const op of operations as Array<{ op?: unknown; path?: unknown; value?: unknown }>) {
    const refused = op?.path === '/ttl' && op.op !== 'remove' && op.op !== 'incr' ? ttlProblem({ ttl: op.value }) : undefined;
    if (refused) {
      res.statusCode = 400;
      return { code: 'BadRequest', message: refused };
    }
  }
  const partitionKey = header(req, 'x-ms-documentdb-partitionkey');
  if (condition !== undefined) {
    let item: ServerDocument | undefined;
    let holds: boolean;
    try {
      item = collection.document(docId, parsePartitionKey(partitionKey, docId)).read();
      if (!/^\s*from\s/i.test(condition)) throw new Error('a patch condition starts with FROM');
      const items = collection.documents;
      const run = items._getQuery(`SELECT * ${condition}`).exec(item ? [item] : [], { parameters: [], udf: items._userDefinedFunctions() });
      holds = (run as { result: unknown[] }).result.length > 0;
    } catch (err) {
      res.statusCode = 400;
      return { code: 'BadRequest', message: `Invalid condition in patch request: ${err instanceof Error ? err.message : String(err)}` };
    }
    // A missing item is answered 404 below, as the library does.
    if (item && !holds) {
      res.statusCode = 412;
      return { code: 'PreconditionFailed', message: 'Condition specified in the patch request is not satisfied.' };
    }
  }
  const result = patchOperation(collection, { id: docId, partitionKey, ifMatch: header(req, 'if-match'), operations });
  res.statusCode = result.statusCode;
  return result.body;
}

/** Runs the query over the partition named in the header only, as Cosmos DB does. */
async function partitionScopedQuery(
  account: ServerAccount,
  req: IncomingMessage,
  res: ServerResponse,
  { dbId, collId }: Record<string, string>,
  raw: Buffer,
): Promise<unknown> {
  const partition = JSON.stringify(partitionValue(header(req, 'x-ms-documentdb-partitionkey')) ?? null);
  return readItems(req, res, 'Documents', async ({ continuation, maxItemCount }) => {
    const spec = parseJson(raw) as { query?: string; parameters?: unknown } | undefined;
    if (!spec?.query) {
      res.statusCode = 400;
      return { message: 'missing query' };
    }
    const collection = account.database(dbId).collection(collId);
    const meta = collection.read();
    if (!meta) return null;
    const items = collection.documents;
    const data = [...items._data.values()]
      .map((item) => item.read())
      .filter((doc) => JSON.stringify(items._getPartition(doc) ?? null) === partition);
    try {
      return items._getQuery(spec.query).exec(data, {
        parameters: spec.parameters,
        udf: items._userDefinedFunctions(),
        maxItemCount,
        continuation,
        compositeIndexes: meta.indexingPolicy?.compositeIndexes ?? [],
      });
    } catch (err) {
      res.statusCode = 400;
      return { message: err instanceof Error ? err.message : String(err) };
    }
  });
}

function partitionValue(headerValue: string | undefined): unknown {
  if (headerValue === undefined) return undefined;
  const parsed = parseJson(Buffer.from(headerValue));
  const value = Array.isArray(parsed) ? parsed[0] : parsed;
  // The SDK sends `[{}]` for "no partition key value".
  return value !== null && typeof value === 'object' ? undefined : value;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function parseJson(raw: Buffer): unknown {
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    return undefined;
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
