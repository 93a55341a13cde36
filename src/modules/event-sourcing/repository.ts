import { Logger } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import {
  ConcurrencyError,
  decodeAggregateBody,
  EventStoreError,
  isConflict,
  NotFoundError,
  ValidationError,
  type AggregateStore,
  type EventRecord,
  type Materializable,
  type OpaqueQuery,
  type OpaqueStore,
  type OperationOptions,
  type SnapshotTailStore,
} from '../event-store/index.js';
import { messageOf } from '../cosmos/index.js';
import { traceCommand } from '../telemetry/index.js';
import { AggregateRoot } from './aggregate-root.js';
import { aggregateMetadata, aggregateTypeOf, eventTypeOf, type AggregateOptions, type EventClass } from './aggregate-metadata.js';
import type { Command } from './command.js';
import { JsonEventSerializer, nowMicros, type EventEnvelope, type EventSerializer } from './event-serializer.js';
import {
  AggregateAlreadyExistsError,
  AggregateNotFoundError,
  CommandContentionError,
  CommandRejectedError,
  CommandValidationError,
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
  if (serializer !== undefined && (typeof serializer?.serialize !== 'function' || typeof serializer.deserialize !== 'function')) {
    throw new ValidationError('serializer', 'must have serialize(envelope) and deserialize(data) methods');
  }
}

/** The stores a repository works on (the event store's tokens). */
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
 * Commands, loads and queries for one aggregate type (protosource's `Repository`): events go to the event
 * store under `<type>/<id>`, the materialized state to the aggregates container.
 *
 * @example
 * const version = await orders.apply(new PlaceOrder('o-1', 'c-1'));
 * const order = await orders.load('o-1');
 */
export class Repository<A extends AggregateRoot> {
  /** The aggregate type name, which namespaces its streams. */
  readonly type: string;
  private readonly options: Readonly<AggregateOptions>;
  private readonly eventClasses: Map<string, { eventClass: EventClass; method: string | symbol }>;
  private readonly serializer: EventSerializer;
  private readonly retry: Required<CommandRetryOptions>;
  private readonly logger: Pick<Logger, 'warn'>;

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
    this.logger = options.logger ?? new Logger(`Repository<${this.type}>`);
  }

  /** The event store's stream id of an aggregate: its id namespaced by the aggregate type. */
  streamId(id: string): string {
    if (typeof id !== 'string' || id.length === 0) throw new ValidationError('id', 'must be a non-empty string');
    return `${this.type}/${id}`;
  }

  /**
   * Runs a command: lifecycle check, validation, state guard, evaluation, emit, persist, then materialize.
   * Returns the aggregate's version afterwards. A lost concurrency race re-runs the command on fresh state
   * within the retry budget (`RepositoryOptions.retry`); when it runs out, `CommandContentionError`.
   */
  apply(command: Command<A>, options?: OperationOptions): Promise<number> {
    return traceCommand(this.type, command, () => this.applyWithRetries(command, options));
  }

  private async applyWithRetries(command: Command<A>, options?: OperationOptions): Promise<number> {
    const { maxElapsedMs, initialDelayMs, maxDelayMs, maxAttempts } = this.retry;
    const started = performance.now();
    let ceiling = initialDelayMs;
    for (let attempt = 1; ; attempt++) {
      let conflict: ConcurrencyError;
      try {
        return await this.applyOnce(command, options);
      } catch (err) {
        if (!isConflict(err)) throw err;
        conflict = err;
      }
      // Full jitter: each loser waits a random time under a growing ceiling, so racing writers spread out.
      const delay = Math.random() * ceiling;
      // From 1 ms when initialDelayMs is 0: a ceiling of 0 would never grow, re-running at once for the whole budget.
      ceiling = Math.min(maxDelayMs, Math.max(ceiling * 2, 1));
      const elapsed = performance.now() - started;
      if (attempt >= maxAttempts || elapsed + delay >= maxElapsedMs) {
        throw new CommandContentionError(this.type, command.aggregateId, conflict.aggregateId, conflict.versions, attempt, elapsed);
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      options?.abortSignal?.throwIfAborted();
    }
  }

  /**
   * The aggregate's current state from its events (newest snapshot first when snapshots are on);
   * `UnreadableStreamError` naming the stream and version for a record it cannot replay.
   */
  async load(id: string, options?: OperationOptions): Promise<A> {
    const streamId = this.streamId(id);
    const every = this.options.snapshotEvery;
    if (every) {
      const tail = (await this.stores.events.loadTail(streamId, every, options)).records.map((r) => this.decode(id, r));
      // A tail without a snapshot in a longer stream (snapshots turned on later, or expired) is not enough.
      if (tail.length === 0 || tail[0].version === 1 || tail.some((e) => e.type === SNAPSHOT_EVENT_TYPE)) {
        return this.replay(id, tail);
      }
    }
    return this.replay(id, (await this.stores.events.load(streamId, options)).records.map((r) => this.decode(id, r)));
  }

  /**
   * Every stored event of the aggregate, oldest first (snapshot records left out); `UnreadableStreamError`
   * for a record that is not an event of this aggregate type, as `load` does.
   */
  async history(id: string, options?: OperationOptions): Promise<HistoryEvent[]> {
    const { records } = await this.stores.events.load(this.streamId(id), options);
    return records
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
    const blank = new this.aggregateClass();
    blank.id = id;
    const { pk, sk } = blank.keys();
    if (!pk || !sk) {
      throw new EventStoreError(
        `get(id) reads the materialized ${this.type} by its main key, which must follow from the id alone; use load(id) or query()`,
      );
    }
    // Both at once: the check adds a request, not a round trip.
    const [materialized, tail] = await Promise.all([
      this.stores.opaque.get(pk, sk, options).then(
        (doc) => this.fromBody(doc.body),
        (err: unknown) => {
          if (err instanceof NotFoundError) return undefined;
          throw err;
        },
      ),
      this.stores.events.loadTail(this.streamId(id), 1, options),
    ]);
    const last = tail.records[0]?.version ?? 0;
    // Also a document ahead of a stream whose events expired: the document is all there is.
    if (materialized && materialized.version >= last) return materialized;
    if (last === 0) throw new AggregateNotFoundError(this.type, id);
    const aggregate = await this.load(id, options);
    if (aggregate.version === 0) throw new AggregateNotFoundError(this.type, id);
    await this.materialize(aggregate, options);
    return aggregate;
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

  private async applyOnce(command: Command<A>, options?: OperationOptions): Promise<number> {
    const aggregate = await this.load(command.aggregateId, options);
    const name = command.constructor.name;
    if (command.lifecycle === 'create' && aggregate.version > 0) throw new AggregateAlreadyExistsError(this.type, aggregate.id);
    if (command.lifecycle === 'mutate' && aggregate.version === 0) throw new AggregateNotFoundError(this.type, aggregate.id);
    const problems = command.validate();
    if (problems.length > 0) throw new CommandValidationError(name, problems);
    if (command.allowedStates && !command.allowedStates.includes(aggregate.currentState() ?? '')) {
      throw new InvalidStateError(name, aggregate.currentState(), command.allowedStates);
    }
    const evaluation = command.evaluate(aggregate);
    if (evaluation === 'skip') return aggregate.version;
    if (typeof evaluation === 'object' && evaluation !== null) throw new CommandRejectedError(name, evaluation.reject);

    const emitted = command.emit(aggregate);
    const events = Array.isArray(emitted) ? (emitted as readonly object[]) : [emitted as object];
    if (events.length === 0) return aggregate.version;
    const records = this.recordsFor(aggregate, events, command.actor || 'anonymous');
    // One transactional batch: a command's events are all stored or none, so a retry never re-applies half.
    await this.stores.events.save(this.streamId(aggregate.id), records, { ...options, atomic: true });
    await this.materialize(aggregate, options);
    return aggregate.version;
  }

  /** Applies the events to the aggregate and builds their records, with a snapshot at every Nth version. */
  private recordsFor(aggregate: A, events: readonly object[], actor: string): EventRecord[] {
    const at = nowMicros();
    const ttl = this.options.eventTtlSeconds ? Math.floor(Date.now() / 1000) + this.options.eventTtlSeconds : undefined;
    const records: EventRecord[] = [];
    const append = (type: string, payload: unknown) => {
      const envelope: EventEnvelope = { type, aggregateId: aggregate.id, version: aggregate.version + 1, at, actor, payload };
      if (type === SNAPSHOT_EVENT_TYPE) aggregate.version = envelope.version;
      else this.applyEnvelope(aggregate, envelope);
      const record: EventRecord = { version: envelope.version, data: this.serializer.serialize(envelope) };
      if (ttl) record.ttl = ttl;
      records.push(record);
    };
    const every = this.options.snapshotEvery;
    for (const event of events) {
      append(eventTypeOf(event), toPayload(event));
      // Snapshots sit exactly at multiples of N, so the newest N records always include one.
      if (every && (aggregate.version + 1) % every === 0) append(SNAPSHOT_EVENT_TYPE, toPayload(aggregate));
    }
    return records;
  }

  /** Best effort, as in protosource: the events are stored, so a failure here is logged, not thrown. */
  private async materialize(aggregate: A, options?: OperationOptions): Promise<void> {
    for (const view of [this.materialized(aggregate), ...aggregate.projections()]) {
      try {
        // A view without a version cannot be ordered: it is upserted, as protosource does.
        await this.stores.aggregates.saveAggregate(view, { ...options, onlyIfNewer: Boolean(view.version) });
      } catch (err) {
        this.logger.warn(
          `materializing ${this.type} ${JSON.stringify(aggregate.id)} at version ${aggregate.version} failed: ${messageOf(err)}`,
        );
      }
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
    const start = this.options.snapshotEvery ? Math.max(0, envelopes.findLastIndex((e) => e.type === SNAPSHOT_EVENT_TYPE)) : 0;
    const run = envelopes.slice(start);
    if (run.length > 0 && run[0].version !== 1 && run[0].type !== SNAPSHOT_EVENT_TYPE) {
      throw this.unreadable(
        id,
        run[0].version,
        `the stream starts at version ${run[0].version} without a snapshot; its first events are gone (expired?)`,
      );
    }
    for (const envelope of run) {
      if (envelope.version !== aggregate.version + 1 && aggregate.version > 0) {
        throw this.unreadable(id, aggregate.version + 1, `version ${aggregate.version + 1} is missing from the stream`);
      }
      if (envelope.type !== SNAPSHOT_EVENT_TYPE) {
        if (!this.eventClasses.has(envelope.type)) throw this.unknownType(id, envelope);
        this.applyEnvelope(aggregate, envelope);
      } else if (this.options.snapshotEvery) {
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

/** An object's JSON form: what is stored as an event's payload or a snapshot. */
function toPayload(value: object): unknown {
  return JSON.parse(JSON.stringify(value)) as unknown;
}
