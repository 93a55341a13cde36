import { Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import {
  decodeAggregateBody,
  EventStoreError,
  isConflict,
  isTipStore,
  isTrackedAggregateStore,
  NotFoundError,
  ValidationError,
  type AggregateStore,
  type EventRecord,
  type Materializable,
  type OpaqueQuery,
  type OpaqueStore,
  type OperationOptions,
  type SnapshotTailStore,
  type StoredTip,
  type StreamLifecycleStore,
  type TipStore,
} from '../event-store/index.js';
import { DEFAULT_COMPRESS_THRESHOLD } from '../event-store/event-store-base.js';
import { materialize as toOpaqueData } from '../event-store/aggregate-documents.js';
import { nowSeconds, STREAM_DELETED_TYPE } from '../event-store/event-documents.js';
import { canonicalJson, checkJsonEncodable, firstDifference } from './encoding-guard.js';
import { CommandPipeline, readMaterialized, type AttemptState, type CommandStrategy, type Decision } from './command-pipeline.js';
import { messageOf } from '../cosmos/index.js';
import { traceCommand } from '../telemetry/index.js';
import { AggregateRoot } from './aggregate-root.js';
import {
  aggregateMetadata,
  aggregateSchemaVersion,
  aggregateTypeOf,
  eventTypeOf,
  snapshotFits,
  type AggregateOptions,
  type EventClass,
} from './aggregate-metadata.js';
import { commandStamper } from './event-types.js';
import type { Command } from './command.js';
import { JsonEventSerializer, nowMicros, type EventEnvelope, type EventSerializer } from './event-serializer.js';
import {
  AggregateAlreadyExistsError,
  AggregateNotFoundError,
  CommandContentionError,
  CommandRejectedError,
  CommandValidationError,
  AggregateVersionMismatchError,
  IdempotencyKeyReusedError,
  InvalidStateError,
  UnreadableStreamError,
} from './event-sourcing.errors.js';

/** An aggregate class a repository can build: `AggregateRoot` with a constructor taking no arguments. */
export type AggregateClass<A extends AggregateRoot> = new () => A;

/** The stored type name of snapshot records; their payload is the aggregate's JSON. */
export const SNAPSHOT_EVENT_TYPE = '$snapshot';

/**
 * How `apply` re-runs a command that lost a concurrency race (another command saved the next version
 * first): on fresh state, after a random wait between 0 and a ceiling that starts at `initialDelayMs` and
 * doubles per lost race up to `maxDelayMs` ("full jitter", so racing writers spread out rather than
 * collide again), until `maxElapsedMs` have passed since the first run. Then `CommandContentionError`.
 */
export interface CommandRetryOptions {
  /** No new run starts once this long has passed since the first (nor a wait that would end later). Default 5000. */
  maxElapsedMs?: number;
  /** The first wait's ceiling, in milliseconds. Default 2. */
  initialDelayMs?: number;
  /** The largest wait ceiling, in milliseconds. Default 100. */
  maxDelayMs?: number;
  /** Runs in all, whatever time is left; default: no limit but the time. 1 turns retries off. */
  maxAttempts?: number;
}

/** The retry budget of `apply` when none is given: enough for a burst of 20 concurrent commands on one aggregate. */
export const DEFAULT_COMMAND_RETRY: Readonly<Required<Omit<CommandRetryOptions, 'maxAttempts'>>> = Object.freeze({
  maxElapsedMs: 5000,
  initialDelayMs: 2,
  maxDelayMs: 100,
});

/** How a repository runs. */
export interface RepositoryOptions {
  /** Default: `JsonEventSerializer` (JSON, gzip from 1 KiB). */
  serializer?: EventSerializer;
  /** How a command that loses a concurrency race is re-run. Default `DEFAULT_COMMAND_RETRY`. */
  retry?: CommandRetryOptions;
  /**
   * @deprecated Use `retry: { maxAttempts }`. Still honoured (when `retry.maxAttempts` is not given) as a
   * cap on runs within the time budget; it is no longer a default of 3.
   */
  maxAttempts?: number;
  /** Where materialization failures are reported. Default: a Nest `Logger` named after the repository. */
  logger?: Pick<Logger, 'warn'>;
  /**
   * Keep a tip document per aggregate (JSON mode) when the event store can (`TipStore`: both stores of this
   * package): its state and version, written in the same batch as the events, so `get`, `load` and
   * `apply` read one document instead of the stream. Default `true`; `false` keeps the stream-only path
   * (snapshot records in the stream, every `snapshotEvery` versions).
   */
  tip?: boolean;
  /** Tips kept in memory to send `If-None-Match` (an unchanged tip then costs a 304). Default 10,000; 0: none. */
  tipCacheSize?: number;
  /**
   * How long an idempotency key is remembered (in the aggregate's tip), in seconds. Default 86,400 (a day).
   * The keys of an aggregate live in its tip, the newest `MAX_IDEMPOTENCY_KEYS` (200) of them: keep the
   * window as short as retries need.
   */
  idempotencyWindowSeconds?: number;
  /**
   * Opts in to creating an erased aggregate's id again: `erase` keeps its tombstone (and the stream's stub
   * that keeps version 1 taken) this many seconds, time for every subscriber to read it, then Cosmos DB
   * purges both and a create of the id succeeds, starting again at version 1. Default: never, a create of
   * an erased id is `AggregateAlreadyExistsError` (409) for good. `erase(id, { tombstoneTtlSeconds })` overrides it.
   */
  recreateErasedAfterSeconds?: number;
}

/** Options of `apply`. */
export interface ApplyOptions extends OperationOptions {
  /**
   * The command's idempotency key (needs the tip): a key this aggregate already applied within
   * `idempotencyWindowSeconds` answers the first outcome (its version) and stores nothing; the same key
   * with a different command is an `IdempotencyKeyReusedError`. The key is recorded in the tip, in the same
   * transactional batch as the events it produced, so a retry after a lost acknowledgement
   * (`WriteOutcomeUnknownError`) is safe with the same key. Keys never reach other aggregates.
   */
  idempotencyKey?: string;
  /**
   * The aggregate's version the caller decided on (0: it must not exist yet). Another version is an
   * `ExpectedVersionError` (a `ConcurrencyError` with `expected` and `found`), never re-run; the check
   * costs no request, and the save's etag condition makes it hold up to the write.
   */
  expectedVersion?: number;
}

/**
 * How many idempotency keys an aggregate's tip keeps, the newest: a key is remembered for the window, or until
 * this many newer keyed commands reached the same aggregate, whichever comes first. It bounds the tip, which
 * every command rewrites (about 100 bytes a key).
 */
export const MAX_IDEMPOTENCY_KEYS = 200;

/** Default of `RepositoryOptions.idempotencyWindowSeconds`: a day. */
export const DEFAULT_IDEMPOTENCY_WINDOW_SECONDS = 86_400;

/** An idempotency key's record in the tip: the version its command ended at, its command's hash, when (epoch seconds). */
interface IdempotencyRecord {
  v: number;
  h: string;
  at: number;
}

/** Throws a `ValidationError` naming the first option that is not usable. */
export function checkRepositoryOptions(options: RepositoryOptions): void {
  if (options === null || typeof options !== 'object') throw new ValidationError('options', 'must be an object');
  const { serializer, maxAttempts, retry } = options;
  if (maxAttempts !== undefined && (!Number.isSafeInteger(maxAttempts) || maxAttempts < 1)) {
    throw new ValidationError('maxAttempts', 'must be a positive integer');
  }
  if (retry !== undefined) {
    if (retry === null || typeof retry !== 'object') throw new ValidationError('retry', 'must be an object { maxElapsedMs?, initialDelayMs?, maxDelayMs?, maxAttempts? }');
    for (const name of ['maxElapsedMs', 'initialDelayMs', 'maxDelayMs'] as const) {
      const value = retry[name];
      if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value) || value < 0)) {
        throw new ValidationError(`retry.${name}`, 'must be a non-negative finite number of milliseconds');
      }
    }
    if (retry.maxAttempts !== undefined && (!Number.isSafeInteger(retry.maxAttempts) || retry.maxAttempts < 1)) {
      throw new ValidationError('retry.maxAttempts', 'must be a positive integer');
    }
    const { initialDelayMs = DEFAULT_COMMAND_RETRY.initialDelayMs, maxDelayMs = DEFAULT_COMMAND_RETRY.maxDelayMs } = retry;
    if (initialDelayMs > maxDelayMs) {
      throw new ValidationError('retry.initialDelayMs', `must be at most retry.maxDelayMs (${maxDelayMs})`);
    }
  }
  if (options.tip !== undefined && typeof options.tip !== 'boolean') throw new ValidationError('tip', 'must be a boolean');
  const window = options.idempotencyWindowSeconds;
  if (window !== undefined && (!Number.isSafeInteger(window) || window < 1)) {
    throw new ValidationError('idempotencyWindowSeconds', 'must be a positive integer number of seconds');
  }
  const recreate = options.recreateErasedAfterSeconds;
  if (recreate !== undefined && (!Number.isSafeInteger(recreate) || recreate < 1)) {
    throw new ValidationError('recreateErasedAfterSeconds', 'must be a positive integer number of seconds');
  }
  if (options.tipCacheSize !== undefined && (!Number.isSafeInteger(options.tipCacheSize) || options.tipCacheSize < 0)) {
    throw new ValidationError('tipCacheSize', 'must be a non-negative integer');
  }
  if (serializer !== undefined && (typeof serializer?.serialize !== 'function' || typeof serializer.deserialize !== 'function')) {
    throw new ValidationError('serializer', 'must have serialize(envelope) and deserialize(data) methods');
  }
}

/** The stores a repository works on (the event store's tokens). */
/** Options of `loadAt`. */
export interface LoadAtOptions extends OperationOptions {
  /** The version whose state to build (0: before the first event); a version past the last gives the current state. */
  toVersion: number;
}

/** Options of `truncate`. */
export interface TruncateOptions extends OperationOptions {
  /** Who truncates, recorded as the snapshot record's actor. Default `'anonymous'`, as commands. */
  actor?: string;
}

/** Options of `erase`. */
export interface EraseOptions extends OperationOptions {
  /**
   * Seconds to keep the erasure's tombstone (for subscribers that read the change feed late); absent or 0:
   * kept for good. The stream's stub goes with it, and only then can the id be created again.
   */
  tombstoneTtlSeconds?: number;
}

export interface RepositoryStores {
  events: SnapshotTailStore;
  aggregates: AggregateStore;
  opaque: OpaqueStore;
}

/** What an `@On` handler gets besides the event: where and when it happened, and who caused it. */
export interface EventContext {
  version: number;
  /** Microseconds since the Unix epoch. */
  at: number;
  actor: string;
}

/** One entry of `history`: a stored domain event, decoded. */
export interface HistoryEvent<E extends object = object> {
  type: string;
  version: number;
  /** Microseconds since the Unix epoch. */
  at: number;
  actor: string;
  event: E;
  /** The event's id; absent for events stored before metadata existed (as are the two below). */
  eventId?: string;
  correlationId?: string;
  causationId?: string;
  headers?: Record<string, string>;
}

/** A page of materialized aggregates. */
export interface AggregatePage<A> {
  items: A[];
  continuationToken?: string;
}

/**
 * @deprecated Not the default any more: `apply` retries within a time budget (`DEFAULT_COMMAND_RETRY`).
 * The old fixed budget, for `retry: { maxAttempts: DEFAULT_MAX_ATTEMPTS }`.
 */
export const DEFAULT_MAX_ATTEMPTS = 3;

/** The field of a materialized body that names the aggregate type (the rest is the aggregate's JSON). */
export const MATERIALIZED_TYPE_FIELD = '$type';

/**
 * Commands, loads and queries for one aggregate type (protosource's `AggregateRepository`): events go to the event
 * store under `<type>/<id>`, the materialized state to the aggregates container.
 *
 * @example
 * const version = await orders.apply(new PlaceOrder('o-1', 'c-1'));
 * const order = await orders.load('o-1');
 */
export class AggregateRepository<A extends AggregateRoot> {
  /** The aggregate type name, which namespaces its streams. */
  readonly type: string;
  private readonly options: Readonly<AggregateOptions>;
  private readonly eventClasses: Map<string, { eventClass: EventClass; method: string | symbol }>;
  private readonly serializer: EventSerializer;
  private readonly retry: Required<CommandRetryOptions>;
  private readonly logger: Pick<Logger, 'warn'>;
  /** The event store, when it keeps tips and `tip` is on. */
  private readonly tips?: TipStore;
  private readonly tipCache = new Map<string, StoredTip>();
  private readonly tipCacheSize: number;
  private readonly idempotencyWindow: number;
  private readonly recreateErasedAfter?: number;
  private readonly pipeline: CommandPipeline<Command<A>, Loaded<A>, Decided>;
  /** Etags of the materialized documents as this process last wrote them: the next write is one conditional replace. */
  private readonly materializedEtags = new Map<string, string>();

  constructor(
    private readonly aggregateClass: AggregateClass<A>,
    private readonly stores: RepositoryStores,
    options: RepositoryOptions = {},
  ) {
    if (!(aggregateClass.prototype instanceof AggregateRoot)) {
      throw new EventStoreError(`${aggregateClass.name} must extend AggregateRoot to have a repository`);
    }
    const meta = aggregateMetadata(aggregateClass);
    this.type = aggregateTypeOf(aggregateClass);
    this.options = meta.options;
    this.eventClasses = meta.handlers;
    checkRepositoryOptions(options);
    this.serializer = options.serializer ?? new JsonEventSerializer();
    // Field by field: an option given as undefined takes the default rather than erasing it.
    const retry = options.retry ?? {};
    this.retry = {
      maxElapsedMs: retry.maxElapsedMs ?? DEFAULT_COMMAND_RETRY.maxElapsedMs,
      initialDelayMs: retry.initialDelayMs ?? DEFAULT_COMMAND_RETRY.initialDelayMs,
      maxDelayMs: retry.maxDelayMs ?? DEFAULT_COMMAND_RETRY.maxDelayMs,
      maxAttempts: retry.maxAttempts ?? options.maxAttempts ?? Number.POSITIVE_INFINITY,
    };
    this.logger = options.logger ?? new Logger(`AggregateRepository<${this.type}>`);
    if (options.tip !== false && isTipStore(stores.events)) this.tips = stores.events;
    this.tipCacheSize = options.tipCacheSize ?? 10_000;
    this.idempotencyWindow = options.idempotencyWindowSeconds ?? DEFAULT_IDEMPOTENCY_WINDOW_SECONDS;
    this.recreateErasedAfter = options.recreateErasedAfterSeconds;
    this.pipeline = new CommandPipeline(this.strategy(), this.retry);
  }

  /** The event store's stream id of an aggregate: its id namespaced by the aggregate type. */
  streamId(id: string): string {
    if (typeof id !== 'string' || id.length === 0) throw new ValidationError('id', 'must be a non-empty string');
    return `${this.type}/${id}`;
  }

  /**
   * Runs a command: lifecycle check, validation, state guard, evaluation, emit, the encoding guard
   * (`ValidationError`: nothing that could not be stored as it is), persist (events and tip in one batch),
   * then materialize. Returns the version of the command's last event. Commands of this process on one
   * aggregate queue; a lost race to another instance re-runs the command on fresh state within the retry
   * budget (`RepositoryOptions.retry`); when it runs out, `CommandContentionError`. See `ApplyOptions` for
   * idempotency keys and expected versions.
   */
  async apply(command: Command<A>, options?: ApplyOptions): Promise<number> {
    // Commands of this process on one aggregate run one after another: they never lose a race to each
    // other (each reads the state the one before wrote, a 304 through the tip cache). Races with other
    // instances remain, and are re-run within the retry budget.
    return traceCommand(this.type, command, () => this.pipeline.run(command, options));
  }

  /** The JSON mode's steps of the command pipeline: the state in the tip (or the stream), JSON envelopes. */
  private strategy(): CommandStrategy<Command<A>, Loaded<A>, Decided> {
    return {
      streamOf: (command) => this.streamId(command?.aggregateId),
      load: async (command, attempt, options) => {
        const current = await this.current(command.aggregateId, options, attempt, command.lifecycle === 'create' && !attempt.conflicted);
        attempt.usedEtag = current.tip?.etag;
        return { ...current, created: current.aggregate.version === 0 };
      },
      decide: (command, loaded, options) => this.decide(command, loaded, options),
      save: async (command, { aggregate, tip, created }, { records, state, idempotency }, options) => {
        const streamId = this.streamId(aggregate.id);
        try {
          if (this.tips) {
            // Events and tip in one transactional batch: the tip is never behind the stream.
            const tipBody = { version: aggregate.version, state, schemaVersion: aggregateSchemaVersion(this.aggregateClass), ...(idempotency && { idempotency }) };
            const etag = await this.tips.saveWithTip(streamId, records, tipBody, { ...options, ifMatch: tip?.etag });
            // No etag: it landed, but the tip has moved on since; the next read fetches it.
            if (etag === undefined) this.tipCache.delete(streamId);
            else this.remember(streamId, { etag, tip: tipBody });
          } else {
            // One transactional batch: a command's events are all stored or none, so a retry never re-applies half.
            await this.stores.events.save(streamId, records, { ...options, atomic: true });
          }
        } catch (err) {
          if (!isConflict(err)) throw err;
          this.tipCache.delete(streamId);
          // A create that lost the race for version 1: the aggregate exists (created by another command, or
          // a stream written before tips that the create did not read).
          if (created && command.lifecycle === 'create') throw new AggregateAlreadyExistsError(this.type, aggregate.id);
          // Any other command that started from no stream and lost version 1: an erased id (its tombstone keeps
          // the versions taken) is no race to re-run, whatever the lifecycle.
          if (created && (await this.erased(streamId, options))) throw new AggregateAlreadyExistsError(this.type, aggregate.id);
          throw err;
        }
      },
      materialize: (_command, { aggregate, created }, _decided, options) => this.materialize(aggregate, options, created),
      contention: (command, conflict, attempts, elapsed) =>
        new CommandContentionError(this.type, command.aggregateId, conflict.aggregateId, conflict.versions, attempts, elapsed),
    };
  }

  /**
   * The aggregate's current state: its tip's (one point read) when it has one, else from its events (newest
   * snapshot first when snapshots are on); `UnreadableStreamError` naming the stream and version for a
   * record it cannot replay.
   */
  async load(id: string, options?: OperationOptions): Promise<A> {
    return (await this.current(id, options)).aggregate;
  }

  /**
   * The aggregate's current state and the tip it came from: the tip when the stream has one (one point
   * read, a 304 when the cached tip is unchanged), else (no tip store, a stream written before tips, or a
   * tip found behind the stream) the events.
   */
  private async current(
    id: string,
    options?: OperationOptions,
    attempt?: AttemptState,
    assumeNew = false,
  ): Promise<{ aggregate: A; tip?: StoredTip }> {
    const streamId = this.streamId(id);
    if (!this.tips) return { aggregate: await this.loadFromStream(id, options) };
    const tip = await this.readTip(streamId, options);
    // A tip of another schema version (the aggregate's state changed shape) is passed over: the events rebuild it.
    if (tip && snapshotFits(tip.tip, this.aggregateClass) && (attempt?.conflictEtag === undefined || tip.etag !== attempt.conflictEtag)) {
      return { aggregate: this.fromTip(id, tip), tip };
    }
    if (!tip && assumeNew) {
      // A create without a tip: most likely a new aggregate, so the stream is not read. Should a stream
      // written before tips exist, the batch's create of version 1 conflicts, and the re-run reads it.
      const blank = new this.aggregateClass();
      blank.id = id;
      return { aggregate: blank };
    }
    return { aggregate: await this.loadFromStream(id, options), tip };
  }

  /** The tip through the cache: `If-None-Match` with the cached etag, so an unchanged tip costs a 304. */
  private async readTip(streamId: string, options?: OperationOptions): Promise<StoredTip | undefined> {
    const tips = this.tips as TipStore;
    const cached = this.tipCache.get(streamId);
    let read = await tips.readTip(streamId, { ...options, ifNoneMatch: cached?.etag });
    if (read === 'not-modified') {
      if (cached) return cached;
      read = await tips.readTip(streamId, options);
      if (read === 'not-modified') throw new EventStoreError(`the tip of ${JSON.stringify(streamId)} answered 304 to a read without If-None-Match`);
    }
    if (!read) {
      this.tipCache.delete(streamId);
      return undefined;
    }
    this.remember(streamId, read);
    return read;
  }

  private rememberMaterialized(key: string, etag: string): void {
    if (this.tipCacheSize === 0) return;
    this.materializedEtags.delete(key);
    this.materializedEtags.set(key, etag);
    if (this.materializedEtags.size > this.tipCacheSize) this.materializedEtags.delete(this.materializedEtags.keys().next().value as string);
  }

  private remember(streamId: string, tip: StoredTip): void {
    if (this.tipCacheSize === 0) return;
    this.tipCache.delete(streamId); // re-inserted last: the oldest entry is the first to go
    this.tipCache.set(streamId, tip);
    if (this.tipCache.size > this.tipCacheSize) this.tipCache.delete(this.tipCache.keys().next().value as string);
  }

  /** The aggregate a tip holds; its state deep-copied, so a command never changes the cached tip. */
  private fromTip(id: string, stored: StoredTip): A {
    const aggregate = new this.aggregateClass();
    aggregate.restoreSnapshot(structuredClone(stored.tip.state) as Record<string, unknown>);
    aggregate.id = id;
    aggregate.version = stored.tip.version;
    return aggregate;
  }

  private async loadFromStream(id: string, options?: OperationOptions): Promise<A> {
    const streamId = this.streamId(id);
    const every = this.options.snapshotEvery;
    if (every) {
      const tail = eventsOnly((await this.stores.events.loadTail(streamId, every, options)).records).map((r) => this.decode(id, r));
      // A tail without a snapshot in a longer stream (snapshots turned on later, or expired) is not enough.
      if (tail.length === 0 || tail[0].version === 1 || tail.some((e) => e.type === SNAPSHOT_EVENT_TYPE && snapshotFits(e, this.aggregateClass))) {
        return this.replay(id, tail);
      }
    }
    return this.replay(id, eventsOnly((await this.stores.events.load(streamId, options)).records).map((r) => this.decode(id, r)));
  }

  /**
   * The aggregate's state as of `toVersion` (time travel): its events from version 1 up to that version
   * replayed (one range query), never the tip nor a materialized document. Version 0, or an id without
   * events, gives the blank aggregate at version 0. A stream truncated past its first events cannot go
   * back before what is left: `UnreadableStreamError` naming the first version missing.
   */
  async loadAt(id: string, { toVersion, ...options }: LoadAtOptions): Promise<A> {
    if (!Number.isSafeInteger(toVersion) || toVersion < 0) throw new ValidationError('toVersion', 'must be a non-negative integer');
    const streamId = this.streamId(id);
    if (toVersion === 0) return this.replay(id, []);
    const events = this.stores.events as Partial<StreamLifecycleStore> & SnapshotTailStore;
    const records =
      typeof events.loadRange === 'function'
        ? (await events.loadRange(streamId, { ...options, fromVersion: 1, toVersion })).records
        : (await events.load(streamId, options)).records.filter((r) => r.version <= toVersion);
    const run = eventsOnly(records);
    if (run.length === 0 && eventsOnly((await this.stores.events.loadTail(streamId, 1, options)).records).length > 0) {
      // Nothing up to the version, yet the stream goes on after it: its first events were cut, not never written.
      throw this.unreadable(id, 1, `the stream's events up to version ${toVersion} are gone (truncated or expired)`);
    }
    return this.replay(id, run.map((r) => this.decode(id, r)));
  }

  /**
   * Truncates the aggregate's stream without losing its state (KurrentDB's `$tb` and Marten's archiving, with the
   * snapshot written first): appends a snapshot of the current state as the stream's next version S (in one
   * transactional batch with the tip, under its etag), then removes every event before S (the store's
   * `truncateBefore`). Resolves S, the first version kept. What is left starts with the snapshot, so the state
   * stays recoverable from the events alone: `load`, `get` and commands go on from version S (one version up:
   * a client's expected version or ETag changes), and a subscriber that replays the stream from the beginning
   * (a rebuild) meets the snapshot first, which it takes with `@OnStoredEvent({ snapshots: true })`. What goes:
   * `history` keeps only what follows S, and `loadAt` before S is an `UnreadableStreamError`.
   *
   * Use this, not the store's `truncateBefore`, on a repository's stream: a cut that leaves the stream starting
   * with an event rather than a snapshot cannot be replayed (`UnreadableStreamError`), and read models rebuilt
   * from the change feed meet an aggregate they never saw created. `AggregateNotFoundError` for an aggregate
   * without events (unknown, or erased). Not atomic: when the cut fails after the snapshot, calling again
   * truncates (with one more snapshot).
   *
   * @example
   * const firstKept = await orders.truncate('o-1'); // the order's events before firstKept are gone
   */
  async truncate(id: string, { actor = 'anonymous', ...options }: TruncateOptions = {}): Promise<number> {
    const streamId = this.streamId(id);
    const events = this.stores.events as Partial<StreamLifecycleStore>;
    if (typeof events.truncateBefore !== 'function') throw new EventStoreError(`the event store of ${this.type} cannot truncate streams (no truncateBefore)`);
    if (typeof actor !== 'string' || actor.length === 0) throw new ValidationError('actor', 'must be a non-empty string');
    const truncateBefore = events.truncateBefore.bind(events);
    // In the aggregate's queue, as commands and erasures: none of this process's commands races the snapshot.
    return this.pipeline.exclusive(streamId, () => this.truncateNow(id, streamId, actor, truncateBefore, options));
  }

  private async truncateNow(
    id: string,
    streamId: string,
    actor: string,
    truncateBefore: StreamLifecycleStore['truncateBefore'],
    options: OperationOptions,
  ): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      const { aggregate, tip } = await this.current(id, options);
      if (aggregate.version === 0) throw new AggregateNotFoundError(this.type, id);
      const state = this.checkState(aggregate);
      const record = this.snapshotRecord(aggregate, state, actor);
      try {
        if (this.tips) {
          const tipBody = { version: record.version, state, schemaVersion: aggregateSchemaVersion(this.aggregateClass), ...(tip?.tip.idempotency !== undefined && { idempotency: tip.tip.idempotency }) };
          const etag = await this.tips.saveWithTip(streamId, [record], tipBody, { ...options, ifMatch: tip?.etag });
          if (etag === undefined) this.tipCache.delete(streamId);
          else this.remember(streamId, { etag, tip: tipBody });
        } else {
          await this.stores.events.save(streamId, [record], { ...options, atomic: true });
        }
      } catch (err) {
        this.tipCache.delete(streamId);
        // A command got the next version first: snapshot the state it left instead.
        if (isConflict(err) && attempt < this.retry.maxAttempts && attempt < 10) continue;
        throw err;
      }
      aggregate.version = record.version;
      await truncateBefore(streamId, record.version, options);
      await this.materialize(aggregate, options);
      return record.version;
    }
  }

  /** The snapshot record of the aggregate's state as the stream's next version. */
  private snapshotRecord(aggregate: A, state: unknown, actor: string): EventRecord {
    const stamp = commandStamper(aggregateSchemaVersion(this.aggregateClass));
    const version = aggregate.version + 1;
    const envelope: EventEnvelope = { type: SNAPSHOT_EVENT_TYPE, aggregateId: aggregate.id, version, at: nowMicros(), actor, payload: state, ...stamp(SNAPSHOT_EVENT_TYPE, SNAPSHOT_EVENT_TYPE) };
    const record: EventRecord = { version, data: this.serializer.serialize(envelope), type: SNAPSHOT_EVENT_TYPE };
    if (this.options.eventTtlSeconds) record.ttl = Math.floor(Date.now() / 1000) + this.options.eventTtlSeconds;
    return record;
  }

  /**
   * Erases an aggregate (the right to erasure): its stream through the event store's `deleteStream` (every
   * event, the tip with its idempotency keys, and a tombstone, type `'$stream-deleted'`, that the change feed
   * hands to subscribers so read models learn of it) and its materialized documents (the main one and its
   * projections', as its last state keys them), deleted before and again after the stream. Afterwards the
   * aggregate is not found (`load` answers version 0, `get` and commands `AggregateNotFoundError`, `history`
   * nothing, `query` does not list it), and a create of the same id is refused with
   * `AggregateAlreadyExistsError` while the tombstone lasts (for good, unless the application opts in with
   * `RepositoryOptions.recreateErasedAfterSeconds` or `tombstoneTtlSeconds`). Resolves `true` when there was
   * something to erase.
   *
   * Commands racing it: the erase wins. In this repository it queues with the aggregate's commands: those
   * before it have finished (materialized) when it starts, those after it find the aggregate gone. A
   * command of another instance either stored its events before the tombstone (they are erased with the
   * rest), or its transactional batch collides with the tombstone and the erased versions' stubs and it fails
   * as not found; a view it writes after the erase deleted it is a create, after which the command reads the
   * stream again and deletes the view when the aggregate was erased meanwhile. What is not covered: an
   * instance that dies between such a write and its check leaves that view behind (`get` answers not found
   * and deletes it, a query lists it until then); so does an erase of another instance racing the command
   * that creates the aggregate (its first view is not checked: that would cost every creation a read); and
   * a command of another instance that moves a projection to new keys in the moment before the erase reads
   * the state leaves that projection. The check across instances needs a read that sees the other
   * instance's latest writes (strong or bounded-staleness consistency): under session consistency a lagging
   * replica may not show the erase yet, and the view stays until `get` or another erase of the id finds it.
   *
   * Not atomic: a failure part-way is finished by calling again (the views are deleted before the stream, so
   * a failure there leaves the state that names them).
   */
  async erase(id: string, options: EraseOptions = {}): Promise<boolean> {
    const streamId = this.streamId(id);
    const events = this.stores.events as Partial<StreamLifecycleStore>;
    if (typeof events.deleteStream !== 'function') throw new EventStoreError(`the event store of ${this.type} cannot erase streams (no deleteStream)`);
    const deleteStream = events.deleteStream.bind(events);
    return this.pipeline.exclusive(streamId, () => this.eraseNow(id, streamId, deleteStream, options));
  }

  private async eraseNow(
    id: string,
    streamId: string,
    deleteStream: StreamLifecycleStore['deleteStream'],
    options: EraseOptions,
  ): Promise<boolean> {
    const { tombstoneTtlSeconds = this.recreateErasedAfter, ...read } = options;
    // The state (the tip's, else the events') names the views to delete. An erasure must not depend on it: a
    // stream that cannot be replayed (truncated, expired, poisoned) is erased all the same, its main view by
    // the id alone (projections whose keys come from the state cannot be found then).
    let aggregate: A | undefined;
    try {
      aggregate = (await this.current(id, read)).aggregate;
    } catch (err) {
      if (!(err instanceof UnreadableStreamError)) throw err;
    }
    const exists = aggregate
      ? aggregate.version > 0
      : (await this.stores.events.loadTail(streamId, 1, read)).records.some((r) => Number.isSafeInteger(r.version) && r.type !== STREAM_DELETED_TYPE);
    const blank = new this.aggregateClass();
    blank.id = id;
    const views = aggregate && aggregate.version > 0 ? [this.materialized(aggregate), ...aggregate.projections()] : [this.materialized(blank)];
    const deleteViews = async () => {
      for (const view of views) {
        const { pk, sk } = view.keys();
        if (!pk || !sk) continue;
        await this.stores.opaque.delete(pk, sk, read);
        this.materializedEtags.delete(JSON.stringify([pk, sk]));
      }
    };
    // Before the stream, so that a failure between the two leaves the state that names the views for the
    // next call; again after it, for a view that a command of another instance wrote meanwhile: from the
    // tombstone on no command stores anything, and a view written later is taken back by its command.
    await deleteViews();
    await deleteStream(streamId, { ...read, ...(tombstoneTtlSeconds !== undefined && { tombstoneTtlSeconds }) });
    this.tipCache.delete(streamId);
    await deleteViews();
    return exists;
  }

  /** True when the stream's last record is an erasure's tombstone. */
  private async erased(streamId: string, options?: OperationOptions): Promise<boolean> {
    const [last] = (await this.stores.events.loadTail(streamId, 1, options)).records;
    return last?.type === STREAM_DELETED_TYPE;
  }

  /**
   * Every stored event of the aggregate, oldest first (snapshot records left out); `UnreadableStreamError`
   * for a record that is not an event of this aggregate type, as `load` does.
   */
  async history(id: string, options?: OperationOptions): Promise<HistoryEvent[]> {
    const { records } = await this.stores.events.load(this.streamId(id), options);
    return eventsOnly(records)
      .map((record) => this.decode(id, record))
      .filter((envelope) => envelope.type !== SNAPSHOT_EVENT_TYPE)
      .map((envelope) => {
        // An event the aggregate has no handler for is not its history: load refuses it, and so does this.
        if (!this.eventClasses.has(envelope.type)) throw this.unknownType(id, envelope);
        return envelope;
      })
      .map((envelope) => ({
        type: envelope.type,
        version: envelope.version,
        at: envelope.at,
        actor: envelope.actor,
        event: this.toEvent(envelope),
        ...metadataOf(envelope),
      }));
  }

  /**
   * The materialized aggregate, read from the aggregates container; `AggregateNotFoundError` when it has
   * no events. Never older than the stream: the stream's last version is read beside the document (one
   * more request, a single-partition query of one record), and a document that is behind it, or missing
   * (materialization is best effort: it failed, or the instance that stored the events died before it
   * ran), gives way to the state rebuilt from the events, which is then written back (`putIfNewer`, best
   * effort: never older over newer).
   *
   * What holds: after a command acknowledged with version N, `get` on the same `CosmosClient` (the same
   * instance) answers N or later: @azure/cosmos sends the session token of its own writes with its reads,
   * so the account's default session consistency shows them. Through another client (another instance)
   * that holds only on an account with strong or bounded-staleness consistency, or a session token passed
   * along; under session consistency another instance's read may lag by what replication has not shown it
   * yet, and then `get` answers the newest version that instance can read, stream and document alike.
   */
  async get(id: string, options?: OperationOptions): Promise<A> {
    if (this.tips) {
      // The tip is written in the same batch as the events: never behind the stream as this client wrote it.
      const tip = await this.readTip(this.streamId(id), options);
      if (tip && snapshotFits(tip.tip, this.aggregateClass)) return this.fromTip(id, tip);
      if (tip) return this.loadFromStream(id, options);
    }
    const blank = new this.aggregateClass();
    blank.id = id;
    const { pk, sk } = blank.keys();
    if (!pk || !sk) {
      throw new EventStoreError(
        `get(id) reads the materialized ${this.type} by its main key, which must follow from the id alone; use load(id) or query()`,
      );
    }
    // The stream's last record, and whether a document was found: an erased aggregate's view left behind.
    let erasedAt: number | undefined;
    let found = false;
    return readMaterialized<A>({
      document: () =>
        this.stores.opaque.get(pk, sk, options).then(
          (doc) => {
            found = true;
            return this.fromBody(doc.body);
          },
          (err: unknown) => {
            if (err instanceof NotFoundError) return undefined;
            throw err;
          },
        ),
      versionOf: (aggregate) => aggregate.version,
      // An erasure's tombstone counts: it is newer than any view of the erased aggregate (one a command of
      // an instance that died before taking it back wrote after the erase), which then gives way to nothing.
      lastVersion: async () => {
        const [last] = (await this.stores.events.loadTail(this.streamId(id), 1, options)).records.filter((r) => Number.isSafeInteger(r.version));
        if (last?.type === STREAM_DELETED_TYPE) erasedAt = last.version;
        return last?.version ?? 0;
      },
      rebuild: async () => {
        if (erasedAt !== undefined) {
          if (found) await this.dropLeftView(id, pk, sk, options);
          throw new AggregateNotFoundError(this.type, id);
        }
        const aggregate = await this.loadFromStream(id, options);
        if (aggregate.version === 0) throw new AggregateNotFoundError(this.type, id);
        return aggregate;
      },
      repair: (aggregate) => this.materialize(aggregate, options),
      notFound: () => new AggregateNotFoundError(this.type, id),
    });
  }

  /** Deletes the main view of an erased aggregate that `get` came upon, so queries stop listing it; best effort. */
  private async dropLeftView(id: string, pk: string, sk: string, options?: OperationOptions): Promise<void> {
    try {
      await this.stores.opaque.delete(pk, sk, options);
      this.materializedEtags.delete(JSON.stringify([pk, sk]));
    } catch (err) {
      this.logger.warn(`deleting the view of the erased ${this.type} ${JSON.stringify(id)} failed: ${messageOf(err)}`);
    }
  }

  /** Materialized aggregates by the main key (index 0) or a secondary-index slot, ascending by its sort key. */
  async query(query: OpaqueQuery, options?: OperationOptions): Promise<AggregatePage<A>> {
    const page = await this.stores.opaque.query(query, options);
    // Slots are shared by every type in the container: another type's documents are left out, never decoded
    // as this one (so a page can hold fewer than `limit` items; follow its continuationToken).
    const items = page.items.flatMap((doc) => {
      const aggregate = this.fromBody(doc.body);
      return aggregate ? [aggregate] : [];
    });
    return { items, continuationToken: page.continuationToken };
  }

  /** Lifecycle, validation, state guard, evaluation, emit and the encoding guard, on the loaded state. */
  private decide(command: Command<A>, { aggregate, tip }: Loaded<A>, options?: ApplyOptions): Decision<Decided> {
    const name = command.constructor.name;
    const now = nowSeconds();
    // The tip's keys still inside the window; a repeated key answers its first outcome, before anything else.
    const keys = Object.fromEntries(
      Object.entries((tip?.tip.idempotency ?? {}) as Record<string, IdempotencyRecord>).filter(([, r]) => r.at + this.idempotencyWindow > now),
    );
    const key = options?.idempotencyKey;
    let hash: string | undefined;
    if (key !== undefined) {
      if (typeof key !== 'string' || key.length === 0 || key.length > 256) throw new ValidationError('idempotencyKey', 'must be a string of 1 to 256 characters');
      if (!this.tips) throw new ValidationError('idempotencyKey', 'needs the tip (an event store with tips, and the tip option on)');
      const fields = JSON.parse(JSON.stringify(command, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))) as unknown;
      hash = createHash('sha256').update(canonicalJson({ command: name, fields })).digest('base64');
      const first = keys[key];
      if (first) {
        if (first.h !== hash) throw new IdempotencyKeyReusedError(name, key);
        return { answer: first.v };
      }
    }
    const expected = options?.expectedVersion;
    if (expected !== undefined) {
      if (!Number.isSafeInteger(expected) || expected < 0) throw new ValidationError('expectedVersion', 'must be a non-negative integer');
      if (aggregate.version !== expected) {
        throw new AggregateVersionMismatchError(this.type, aggregate.id, this.streamId(aggregate.id), expected, aggregate.version);
      }
    }
    if (command.lifecycle === 'create' && aggregate.version > 0) throw new AggregateAlreadyExistsError(this.type, aggregate.id);
    if (command.lifecycle === 'mutate' && aggregate.version === 0) throw new AggregateNotFoundError(this.type, aggregate.id);
    const problems = command.validate();
    if (problems.length > 0) throw new CommandValidationError(name, problems);
    if (command.allowedStates && !command.allowedStates.includes(aggregate.currentState() ?? '')) {
      throw new InvalidStateError(name, aggregate.currentState(), command.allowedStates);
    }
    const evaluation = command.evaluate(aggregate);
    if (evaluation === 'skip') return { answer: aggregate.version };
    if (typeof evaluation === 'object' && evaluation !== null) throw new CommandRejectedError(name, evaluation.reject);

    const emitted = command.emit(aggregate);
    const events = Array.isArray(emitted) ? (emitted as readonly object[]) : [emitted as object];
    if (events.length === 0) return { answer: aggregate.version };
    events.forEach((event, i) => checkJsonEncodable(event, `events[${i}] (${eventTypeOf(event)})`));
    const records = this.recordsFor(aggregate, events, command.actor || 'anonymous', !this.tips);
    // Nothing is stored that would leave the aggregate unreadable: the state, the tip and every
    // materialized view are encoded (and the state read back) before the save.
    const state = this.checkState(aggregate);
    if (key !== undefined && hash !== undefined) keys[key] = { v: aggregate.version, h: hash, at: now };
    // Every command rewrites the whole tip (and sends it down the change feed): only the newest keys stay.
    const newest = Object.entries(keys).sort(([, x], [, y]) => y.at - x.at || y.v - x.v).slice(0, MAX_IDEMPOTENCY_KEYS);
    const idempotency = newest.length > 0 ? Object.fromEntries(newest) : undefined;
    return { store: { records, state, idempotency }, version: aggregate.version };
  }

  /**
   * The aggregate's state as it would be stored, checked: JSON holds every value as it is, the state read
   * back (`restoreSnapshot`) is the same state, and every materialized document (body, keys, index slots)
   * encodes within Cosmos DB's limits. A `ValidationError` naming the field otherwise.
   */
  private checkState(aggregate: A): unknown {
    checkJsonEncodable(aggregate, 'state');
    const state = toPayload(aggregate);
    if (this.tips || this.options.snapshotEvery) {
      const restored = new this.aggregateClass();
      restored.restoreSnapshot(toPayload(state as object) as Record<string, unknown>);
      restored.id = aggregate.id;
      restored.version = aggregate.version;
      const back = toPayload(restored);
      // Compared as JSON, and as values too: a Map, a Set, a Date or a class instance has a JSON form that
      // compares equal to itself, yet restores as something else (a Map as {}), so the tip would lose it.
      const lost = canonicalJson(back) !== canonicalJson(state) ? firstDifference(state, back, 'state') ?? 'state' : fieldNotRestored(aggregate, restored);
      if (lost !== undefined) {
        throw new ValidationError(
          lost,
          'does not survive its JSON round trip (restoreSnapshot of the stored JSON gives another value); override restoreSnapshot',
        );
      }
    }
    const now = nowSeconds();
    for (const [i, view] of [this.materialized(aggregate), ...aggregate.projections()].entries()) {
      const field = i === 0 ? 'materialized' : `projections[${i - 1}]`;
      checkJsonEncodable(view, field);
      try {
        toOpaqueData(view, DEFAULT_COMPRESS_THRESHOLD, now);
      } catch (err) {
        if (err instanceof ValidationError) throw new ValidationError(`${field}.${err.field}`, err.message.slice(err.field.length + 2));
        throw err;
      }
    }
    return state;
  }

  /** Applies the events to the aggregate and builds their records, with a snapshot at every Nth version. */
  private recordsFor(aggregate: A, events: readonly object[], actor: string, snapshots: boolean): EventRecord[] {
    const at = nowMicros();
    const ttl = this.options.eventTtlSeconds ? Math.floor(Date.now() / 1000) + this.options.eventTtlSeconds : undefined;
    const records: EventRecord[] = [];
    const stamp = commandStamper(aggregateSchemaVersion(this.aggregateClass));
    const append = (type: string, payload: unknown) => {
      const envelope: EventEnvelope = { type, aggregateId: aggregate.id, version: aggregate.version + 1, at, actor, payload, ...stamp(type, SNAPSHOT_EVENT_TYPE) };
      if (type === SNAPSHOT_EVENT_TYPE) aggregate.version = envelope.version;
      else this.applyEnvelope(aggregate, envelope);
      // The type is stored beside the payload (field `y`) so that readAll can select events by type.
      const record: EventRecord = { version: envelope.version, data: this.serializer.serialize(envelope), type };
      if (ttl) record.ttl = ttl;
      records.push(record);
    };
    // With a tip, the state is in the tip: no snapshot record, so every version is an event.
    const every = snapshots ? this.options.snapshotEvery : undefined;
    for (const event of events) {
      append(eventTypeOf(event), toPayload(event));
      // Snapshots sit exactly at multiples of N, so the newest N records always include one.
      if (every && (aggregate.version + 1) % every === 0) append(SNAPSHOT_EVENT_TYPE, toPayload(aggregate));
    }
    return records;
  }

  /**
   * Best effort, as in protosource: the events are stored, so a failure here is logged, not thrown. One
   * conditional request per view: a replace under its etag when this process wrote it last, a create when
   * the command created the aggregate, else a patch conditional on the stored version being older; a read,
   * then a conditional write, only when that is refused. Never older over newer.
   */
  private async materialize(aggregate: A, options?: OperationOptions, created = false): Promise<void> {
    const aggregates = this.stores.aggregates;
    const views = [this.materialized(aggregate), ...aggregate.projections()];
    // Whether a write may have created a document: then an erasure may have deleted it meanwhile.
    let creating = false;
    for (const view of views) {
      let key: string | undefined;
      try {
        if (view.version && isTrackedAggregateStore(aggregates)) {
          const { pk, sk } = view.keys();
          key = JSON.stringify([pk, sk]);
          const known = this.materializedEtags.get(key) ?? (created ? null : undefined);
          const put = await aggregates.saveAggregateTracked(view, known, options);
          if (put.etag) this.rememberMaterialized(key, put.etag);
          else this.materializedEtags.delete(key);
          // A view created where one existed (gone since: an erase) is checked; the aggregate's first view,
          // created as expected, is not: that check would cost every creation a read (see `erase`).
          creating ||= put.written && put.created !== false && known !== null;
          continue;
        }
        // A view without a version cannot be ordered: it is upserted, as protosource does.
        creating = true;
        await aggregates.saveAggregate(view, { ...options, onlyIfNewer: Boolean(view.version) });
      } catch (err) {
        if (key) this.materializedEtags.delete(key);
        this.logger.warn(
          `materializing ${this.type} ${JSON.stringify(aggregate.id)} at version ${aggregate.version} failed: ${messageOf(err)}`,
        );
      }
    }
    if (creating) await this.withdrawIfErased(aggregate, views, options);
  }

  /**
   * After a materialization that may have created a view: when the aggregate was erased meanwhile (an erase
   * of another instance, between this command's batch and its views), its views are deleted again. An erase
   * deletes the stream before its last pass over the views, so a view this process created after that pass
   * is seen here, and one created before it is deleted by it. One read (the tip, a 304 when unchanged; or the
   * stream's last record), only after writes that created a document (a new aggregate, a view that was
   * missing) or may have (a view without a version, upserted; a store that cannot tell).
   */
  private async withdrawIfErased(aggregate: A, views: ReadonlyArray<Materializable>, options?: OperationOptions): Promise<void> {
    const streamId = this.streamId(aggregate.id);
    try {
      if (this.tips && (await this.readTip(streamId, options))) return;
      if (!(await this.erased(streamId, options))) return;
      for (const view of views) {
        const { pk, sk } = view.keys();
        if (!pk || !sk) continue;
        await this.stores.opaque.delete(pk, sk, options);
        this.materializedEtags.delete(JSON.stringify([pk, sk]));
      }
    } catch (err) {
      this.logger.warn(
        `checking ${this.type} ${JSON.stringify(aggregate.id)} for an erasure after materializing it failed: ${messageOf(err)}`,
      );
    }
  }

  /**
   * Builds the state from a run of records: from the newest snapshot when snapshots are on, else from
   * version 1 with snapshot records passed over (so turning snapshots off replays every event, and a
   * snapshot taken with other handlers can be bypassed). A run that starts elsewhere or has a gap (events
   * expired, say) would give a wrong state and is refused.
   */
  private replay(id: string, envelopes: readonly EventEnvelope[]): A {
    const aggregate = new this.aggregateClass();
    aggregate.id = id;
    // A stream that no longer starts at version 1 (truncated, expired) can only be read from a snapshot,
    // whether snapshots are on or not: `truncate` leaves one as the first record.
    const fromSnapshot = Boolean(this.options.snapshotEvery) || (envelopes.length > 0 && envelopes[0].version !== 1);
    const start = fromSnapshot ? Math.max(0, envelopes.findLastIndex((e) => e.type === SNAPSHOT_EVENT_TYPE && snapshotFits(e, this.aggregateClass))) : 0;
    const run = envelopes.slice(start);
    if (run.length > 0 && run[0].version !== 1 && !(run[0].type === SNAPSHOT_EVENT_TYPE && snapshotFits(run[0], this.aggregateClass))) {
      throw this.unreadable(
        id,
        run[0].version,
        `the stream starts at version ${run[0].version} without a snapshot it can restore; its first events are gone (truncated without a snapshot, or expired)`,
      );
    }
    for (const envelope of run) {
      if (envelope.version !== aggregate.version + 1 && aggregate.version > 0) {
        throw this.unreadable(id, aggregate.version + 1, `version ${aggregate.version + 1} is missing from the stream`);
      }
      if (envelope.type !== SNAPSHOT_EVENT_TYPE) {
        if (!this.eventClasses.has(envelope.type)) throw this.unknownType(id, envelope);
        this.applyEnvelope(aggregate, envelope);
      } else if (fromSnapshot && snapshotFits(envelope, this.aggregateClass)) {
        aggregate.restoreSnapshot(envelope.payload as Record<string, unknown>);
        aggregate.id = id;
      }
      aggregate.version = envelope.version;
    }
    return aggregate;
  }

  private applyEnvelope(aggregate: A, envelope: EventEnvelope): void {
    const handler = this.eventClasses.get(envelope.type);
    if (!handler) {
      throw new EventStoreError(`${this.type} has no @On handler for event type ${JSON.stringify(envelope.type)} (version ${envelope.version})`);
    }
    const context: EventContext = { version: envelope.version, at: envelope.at, actor: envelope.actor };
    (aggregate as unknown as Record<string | symbol, (event: object, context: EventContext) => void>)[handler.method](
      this.toEvent(envelope),
      context,
    );
    aggregate.version = envelope.version;
  }

  /** A stored record's envelope; `UnreadableStreamError` naming the stream and version when it is none. */
  private decode(id: string, record: EventRecord): EventEnvelope {
    let envelope: EventEnvelope;
    try {
      envelope = this.serializer.deserialize(record.data);
    } catch (err) {
      throw this.unreadable(id, record.version, `the record is not an event this repository can decode (${messageOf(err)})`, err);
    }
    if (envelope.version !== record.version) {
      throw this.unreadable(id, record.version, `the record holds an event of version ${String(envelope.version)}`);
    }
    return envelope;
  }

  private unknownType(id: string, envelope: EventEnvelope): UnreadableStreamError {
    return this.unreadable(id, envelope.version, `${this.type} has no @On handler for event type ${JSON.stringify(envelope.type)}`);
  }

  private unreadable(id: string, version: number, reason: string, cause?: unknown): UnreadableStreamError {
    return new UnreadableStreamError(this.type, id, this.streamId(id), version, reason, cause === undefined ? undefined : { cause });
  }

  private toEvent(envelope: EventEnvelope): object {
    const handler = this.eventClasses.get(envelope.type);
    // Rebuilt without running the constructor: the stored fields are the event.
    const event: object = Object.create(handler ? handler.eventClass.prototype : Object.prototype);
    return Object.assign(event, envelope.payload);
  }

  /** The aggregate a materialized body holds, or `undefined` when it is another type's or not a JSON aggregate at all. */
  private fromBody(body: Uint8Array): A | undefined {
    let decoded: unknown;
    try {
      decoded = decodeAggregateBody(body);
    } catch {
      // Not JSON: another writer's document (a protosource view's protobuf body, say) in a shared slot.
      return undefined;
    }
    if (decoded === null || typeof decoded !== 'object' || Array.isArray(decoded)) return undefined;
    const { [MATERIALIZED_TYPE_FIELD]: type, ...state } = decoded as Record<string, unknown>;
    // A body without the field was written before it existed: nothing tells its type.
    if (type !== undefined && type !== this.type) return undefined;
    const aggregate = new this.aggregateClass();
    aggregate.restoreSnapshot(state);
    return aggregate;
  }

  /** The aggregate as materialized: its JSON with its type, so shared slots never mix types up. */
  private materialized(aggregate: A): Materializable & { toJSON(): object } {
    const type = this.type;
    return {
      keys: () => aggregate.keys(),
      version: aggregate.version,
      ttlSeconds: aggregate.ttlSeconds,
      toJSON: () => ({ ...(toPayload(aggregate) as object), [MATERIALIZED_TYPE_FIELD]: type }),
    };
  }
}

/** The metadata fields an envelope holds (events stored before metadata have none). */
function metadataOf({ eventId, correlationId, causationId, headers }: EventEnvelope): Partial<HistoryEvent> {
  const metadata: Partial<HistoryEvent> = {};
  if (eventId !== undefined) metadata.eventId = eventId;
  if (correlationId !== undefined) metadata.correlationId = correlationId;
  if (causationId !== undefined) metadata.causationId = causationId;
  if (headers !== undefined) metadata.headers = headers;
  return metadata;
}

/** What a run of a JSON command starts from: the aggregate, the tip it came from, and whether it is new. */
interface Loaded<A> {
  aggregate: A;
  tip?: StoredTip;
  created: boolean;
}

/** What a JSON command stores: its event records and the state after them (the tip's). */
interface Decided {
  records: EventRecord[];
  state: unknown;
  /** The tip's idempotency keys after this command (expired ones dropped). */
  idempotency?: Record<string, IdempotencyRecord>;
}

/**
 * Event records only: a document without a numeric version (an aggregate's tip, to a store whose reads do
 * not leave it out) is not an event, nor is an erasure's tombstone (an erased stream reads as no stream).
 */
function eventsOnly(records: readonly EventRecord[]): EventRecord[] {
  return records.filter((r) => Number.isSafeInteger(r.version) && r.type !== STREAM_DELETED_TYPE);
}

/** An object's JSON form: what is stored as an event's payload or a snapshot. */
/**
 * The first own field of `live` (not `id`, `version`, nor a function) that `restored` does not hold as the same
 * value of the same kind (a Map where a Map was, a Date, an instance of the same class), or undefined when
 * every field came back. Compared by constructor name, not prototype identity, so values from another realm
 * (a test runner's) compare as they would in one process.
 */
function fieldNotRestored(live: object, restored: object): string | undefined {
  const a = live as Record<string, unknown>;
  const b = restored as Record<string, unknown>;
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (key === 'id' || key === 'version' || typeof a[key] === 'function' || typeof b[key] === 'function') continue;
    if (!sameValue(a[key], b[key])) return `state.${key}`;
  }
  return undefined;
}

function kindOf(value: object): string {
  const proto = Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null;
  return proto === null ? 'Object' : (proto.constructor?.name ?? 'Object');
}

function sameValue(x: unknown, y: unknown): boolean {
  if (x === null || y === null || typeof x !== 'object' || typeof y !== 'object') return Object.is(x, y) || (x === undefined && y === undefined);
  if (kindOf(x) !== kindOf(y)) return false;
  // Same kind from here on: compared by what each kind holds.
  if (kindOf(x) === 'Date') return (x as Date).getTime() === (y as Date).getTime();
  if (kindOf(x) === 'Map') {
    const [m, n] = [x as Map<unknown, unknown>, y as Map<unknown, unknown>];
    return m.size === n.size && [...m].every(([k, v]) => n.has(k) && sameValue(v, n.get(k)));
  }
  if (kindOf(x) === 'Set') {
    const [m, n] = [x as Set<unknown>, y as Set<unknown>];
    return m.size === n.size && [...m].every((v) => n.has(v));
  }
  const [p, q] = [x as Record<string, unknown>, y as Record<string, unknown>];
  const keys = new Set([...Object.keys(p), ...Object.keys(q)]);
  return [...keys].every((k) => typeof p[k] === 'function' || sameValue(p[k], q[k]));
}

function toPayload(value: object): unknown {
  return JSON.parse(JSON.stringify(value)) as unknown;
}
