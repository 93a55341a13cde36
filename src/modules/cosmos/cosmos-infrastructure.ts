import type { Container, ContainerDefinition, CosmosClient, Database, IndexingPolicy, PartitionKeyDefinition } from '@azure/cosmos';
import { Logger } from '@nestjs/common';
// The stores' own classifier of transient faults: start-up retries exactly what they retry. A direct import
// of the file (not the event-store index), which uses the cosmos module only when called.
import { backoffMs, isTransientReadFailure, pause } from './transient-faults.js';
import { messageOf, statusOf } from './cosmos-errors.js';

export const DEFAULT_EVENTS_CONTAINER = 'events';
export const DEFAULT_AGGREGATES_CONTAINER = 'aggregates';

/**
 * How long start-up may take to check (and create) the database and a set of containers, transient faults
 * retried: long enough to ride out a cut connection or a busy gateway, short enough that an endpoint which
 * does not answer, or does not resolve, is reported within seconds (@azure/cosmos alone retries a host it
 * cannot resolve for two minutes).
 */
export const DEFAULT_STARTUP_TIMEOUT_MS = 15_000;

// Waits between start-up attempts: from 200 ms, doubling, at most 2 s (with jitter, as the stores wait).
const STARTUP_BACKOFF = Object.freeze({ maxAttempts: Number.MAX_SAFE_INTEGER, initialDelayMs: 200, maxDelayMs: 2_000 });

const logger = new Logger('CosmosModule');

/**
 * The events container's index: only what the store's queries filter and sort on. `a` (the stream), `v`
 * (version order and ranges), `t` (expiry), `y` (event type, for `readAll`) and `_ts` (commit time, for
 * `readAll`). Everything else, the base64 payload `d` above all, is left out of the index: Cosmos DB charges a
 * write for every indexed path it holds, so a payload that no query reads costs nothing to index.
 */
export const EVENTS_INDEXING_POLICY: IndexingPolicy = Object.freeze({
  indexingMode: 'consistent',
  automatic: true,
  includedPaths: ['/a/?', '/v/?', '/t/?', '/y/?', '/_ts/?'].map((path) => ({ path })),
  excludedPaths: [{ path: '/*' }],
}) as IndexingPolicy;

/**
 * The aggregates container's index: its keys `pk`/`sk` and `id`, the secondary-index slots `gsi1pk`/`gsi1sk` …
 * `gsi20pk`/`gsi20sk`, `version` and `t`. The materialized state `body` is left out.
 */
export const AGGREGATES_INDEXING_POLICY: IndexingPolicy = Object.freeze({
  indexingMode: 'consistent',
  automatic: true,
  includedPaths: [
    '/pk/?',
    '/sk/?',
    '/id/?',
    '/version/?',
    '/t/?',
    ...Array.from({ length: 20 }, (_, i) => [`/gsi${i + 1}pk/?`, `/gsi${i + 1}sk/?`]).flat(),
  ].map((path) => ({ path })),
  excludedPaths: [{ path: '/*' }],
}) as IndexingPolicy;

/** Options of `ensureDatabase`, `ensureContainers` and `ensureContainer`. */
export interface EnsureOptions {
  /**
   * How long the call may take in all, retries of transient faults (HTTP 408/449/503, timeouts, lost or
   * refused connections, unresolved hosts) included; then it fails with a `CosmosStartupTimeoutError` whose
   * `cause` is the last fault. Default `DEFAULT_STARTUP_TIMEOUT_MS` (15 s).
   */
  timeoutMs?: number;
  /** Ends the call at once, with the signal's reason. */
  abortSignal?: AbortSignal;
  /**
   * `ensureContainers` only: also give containers that already exist (created by Go's protosource or an
   * earlier version of this package, with Cosmos DB's index-everything default) this package's index policy,
   * through `applyIndexingPolicy`. Default `false`: an existing container is used as it is. Containers this
   * package creates get the policy either way.
   */
  applyIndexingPolicy?: boolean;
}

/** Options of `ensureContainer`. */
export interface EnsureContainerOptions extends EnsureOptions {
  /** The index policy of a container this call creates (absent: Cosmos DB's default, every path indexed). */
  indexingPolicy?: IndexingPolicy;
}

/**
 * Start-up could not reach Cosmos DB in time: every attempt failed transiently (the last fault is the
 * `cause`), or none was answered. The endpoint is wrong, unreachable from here, or the account is down.
 */
export class CosmosStartupTimeoutError extends Error {
  override readonly name = 'CosmosStartupTimeoutError';

  constructor(
    /** What was being done, e.g. `checking database "eventstore"`. */
    readonly operation: string,
    readonly timeoutMs: number,
    cause?: unknown,
  ) {
    super(
      cause === undefined
        ? `${operation}: Cosmos DB did not answer within ${seconds(timeoutMs)}`
        : `${operation}: Cosmos DB could not be used within ${seconds(timeoutMs)}; last fault: ${messageOf(cause)}`,
      cause === undefined ? undefined : { cause },
    );
  }
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

function checkTimeout(options: EnsureOptions): number {
  const timeoutMs = options.timeoutMs ?? DEFAULT_STARTUP_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    throw new Error(`timeoutMs must be a positive integer of milliseconds, got ${String(options.timeoutMs)}`);
  }
  return timeoutMs;
}

/**
 * Runs `work` again after a backoff while it fails transiently, until `timeoutMs` have passed. Raced as well
 * as aborted at the deadline: @azure/cosmos does not pass the signal to every request it makes (its account
 * read, its retry waits), so an abort alone could leave start-up hanging.
 */
async function withinStartupTime<T>(operation: string, options: EnsureOptions, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const timeoutMs = checkTimeout(options);
  options.abortSignal?.throwIfAborted();
  const deadline = Date.now() + timeoutMs;
  const controller = new AbortController();
  const signal = options.abortSignal ? AbortSignal.any([controller.signal, options.abortSignal]) : controller.signal;
  let lastFault: unknown;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new CosmosStartupTimeoutError(operation, timeoutMs, lastFault));
      controller.abort();
    }, timeoutMs);
  });
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(options.abortSignal?.reason);
    options.abortSignal?.addEventListener('abort', onAbort, { once: true });
  });
  const attempts = (async () => {
    for (let n = 1; ; n++) {
      try {
        return await work(signal);
      } catch (err) {
        if (signal.aborted || !isTransientReadFailure(err)) throw err;
        lastFault = err;
        // One line, at the first fault: the operator sees why start-up waits, not every attempt.
        if (n === 1) logger.warn(`${operation}: ${firstLine(messageOf(err))}; retrying for up to ${seconds(timeoutMs)}`);
      }
      await pause(Math.max(0, Math.min(backoffMs(n, STARTUP_BACKOFF), deadline - Date.now())), signal);
    }
  })();
  try {
    return await Promise.race([attempts, timedOut, aborted]);
  } finally {
    clearTimeout(timer);
    if (onAbort) options.abortSignal?.removeEventListener('abort', onAbort);
    controller.abort();
  }
}

function firstLine(message: string): string {
  return message.split('\n', 1)[0].trim();
}

/**
 * Creates the database when missing. Idempotent and race-safe: a 409 from a concurrent creator counts as
 * success (`createIfNotExists` alone can throw it). Transient faults are retried within `options.timeoutMs`.
 */
export async function ensureDatabase(client: CosmosClient, databaseId: string, options: EnsureOptions = {}): Promise<Database> {
  await withinStartupTime(`checking database ${JSON.stringify(databaseId)}`, options, async (abortSignal) => {
    try {
      await client.databases.createIfNotExists({ id: databaseId }, { abortSignal });
    } catch (err) {
      if (statusOf(err) !== 409) throw err;
    }
  });
  return client.database(databaseId);
}

/**
 * Creates the events (`/a`) and aggregates (`/pk`) containers when missing, with partition-key definition
 * version 2 (partition key values up to 2 KB), `defaultTtl -1` (items expire only by their own `ttl`) and an
 * index of only what the queries use (`EVENTS_INDEXING_POLICY`, `AGGREGATES_INDEXING_POLICY`; existing
 * containers keep theirs unless `options.applyIndexingPolicy`).
 * An existing container with another partition key path is an error, not a silent misconfiguration; one of
 * another partition-key definition version (as protosource's Go `EnsureContainers` creates) is accepted.
 * Transient faults are retried within `options.timeoutMs`.
 */
export async function ensureContainers(
  database: Database,
  eventsContainerId: string = DEFAULT_EVENTS_CONTAINER,
  aggregatesContainerId: string = DEFAULT_AGGREGATES_CONTAINER,
  options: EnsureOptions = {},
): Promise<void> {
  const both: Array<[string, string, IndexingPolicy]> = [
    [eventsContainerId, '/a', EVENTS_INDEXING_POLICY],
    [aggregatesContainerId, '/pk', AGGREGATES_INDEXING_POLICY],
  ];
  await Promise.all(
    both.map(async ([id, path, indexingPolicy]) => {
      await ensureContainer(database, id, path, 'the event store', { ...options, indexingPolicy });
      if (options.applyIndexingPolicy) await applyIndexingPolicy(database.container(id), indexingPolicy, options);
    }),
  );
}

/**
 * Gives an existing container an index policy (`EVENTS_INDEXING_POLICY` or `AGGREGATES_INDEXING_POLICY`),
 * keeping the rest of its definition. Resolves `true` when it replaced the policy, `false` when the
 * container had it already (compared by indexing mode and paths). Cosmos DB then re-indexes in the
 * background, online, with the container's spare throughput; queries keep working meanwhile (an ORDER BY
 * on a path being added may answer incompletely until it is done). Transient faults are retried within
 * `options.timeoutMs`.
 *
 * @example
 * await applyIndexingPolicy(database.container('events'), EVENTS_INDEXING_POLICY);
 */
export async function applyIndexingPolicy(container: Container, policy: IndexingPolicy, options: EnsureOptions = {}): Promise<boolean> {
  return withinStartupTime(`indexing container ${JSON.stringify(container.id)}`, options, async (abortSignal) => {
    const { resource } = await container.read({ abortSignal });
    if (!resource) throw new Error(`container ${JSON.stringify(container.id)} does not exist`);
    if (samePolicy(resource.indexingPolicy, policy)) return false;
    const definition: ContainerDefinition = { ...resource, indexingPolicy: policy };
    await container.replace(definition, { abortSignal });
    return true;
  });
}

function samePolicy(current: IndexingPolicy | undefined, wanted: IndexingPolicy): boolean {
  if (!current) return false;
  const paths = (list: Array<{ path: string }> | undefined) => JSON.stringify((list ?? []).map((p) => p.path).sort());
  return (
    (current.indexingMode ?? 'consistent').toLowerCase() === (wanted.indexingMode ?? 'consistent').toLowerCase() &&
    paths(current.includedPaths) === paths(wanted.includedPaths) &&
    // The service adds `/"_etag"/?` to every policy's excluded paths.
    paths(current.excludedPaths?.filter((p) => p.path !== '/"_etag"/?')) === paths(wanted.excludedPaths)
  );
}

/**
 * Creates one container when missing (partition key `path`, definition version 2, `defaultTtl -1`, and
 * `options.indexingPolicy` when given), race-safe,
 * and fails with a message naming `usedBy` when it exists with another partition key path. Transient faults
 * are retried within `options.timeoutMs`.
 *
 * An existing container is accepted whatever its partition-key definition version: protosource's
 * `EnsureContainers` (Go) sends none, so the service default applies, and refusing those containers would
 * keep a service sharing the account with a Go one from starting. A version 1 container caps partition key
 * values at 101 bytes (longer aggregate ids are refused by Cosmos DB on write): that is logged as a warning.
 */
export async function ensureContainer(
  database: Database,
  id: string,
  path: string,
  usedBy = 'the event store',
  options: EnsureContainerOptions = {},
): Promise<void> {
  const partitionKey: PartitionKeyDefinition = { paths: [path], version: 2 };
  const indexing = options.indexingPolicy ? { indexingPolicy: options.indexingPolicy } : {};
  const resource = await withinStartupTime(`checking container ${JSON.stringify(id)}`, options, async (abortSignal) => {
    try {
      await database.containers.createIfNotExists({ id, partitionKey, defaultTtl: -1, ...indexing }, { abortSignal });
    } catch (err) {
      if (statusOf(err) !== 409) throw err;
    }
    // createIfNotExists returns an existing container's definition without comparing it: compare here.
    return (await database.container(id).read({ abortSignal })).resource;
  });
  const paths = resource?.partitionKey?.paths ?? [];
  if (paths.length !== 1 || paths[0] !== path) {
    throw new Error(
      `container ${JSON.stringify(id)} exists with partition key ${JSON.stringify(paths)}; ${usedBy} needs ` +
        `${JSON.stringify([path])}: point it at another container or recreate this one`,
    );
  }
  // No version in the definition: the container was created with version 1, the service's old default.
  const version = resource?.partitionKey?.version ?? 1;
  if (version !== 2) {
    logger.warn(
      `container ${JSON.stringify(id)} has partition-key definition version ${version}: partition key values ` +
        'are limited to 101 bytes there (2 KB with version 2), so longer aggregate ids will be refused',
    );
  }
}
