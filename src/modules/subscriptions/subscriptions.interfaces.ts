import type { InjectionToken } from '@nestjs/common';
import type { EventClass } from '../event-sourcing/index.js';

/**
 * Turns an event's stored bytes into the event object handlers receive as `event`. Structural: any object
 * with `deserialize` fits, e.g. the event-sourcing module's `JsonEventSerializer`. The optional methods tell
 * the subscriptions what they need of a decoded event; without them it is read as an `EventEnvelope`
 * (`type`, `payload`, snapshots of type `$snapshot`), so a serializer of another format (protobuf, say)
 * gives them.
 */
export interface EventDeserializer {
  deserialize(bytes: Uint8Array): unknown;
  /** The event's type name, what `@OnStoredEvent` selects by. Default: the decoded object's `type` string. */
  typeOf?(event: unknown): string | undefined;
  /** The event's own fields, what a handler of an event class receives. Default: the decoded object's `payload`. */
  payloadOf?(event: unknown): unknown;
  /** True when the record is a snapshot of an aggregate rather than an event. Default: type `$snapshot`. */
  isSnapshot?(event: unknown): boolean;
}

/** Where a consumer group starts reading when it has no checkpoint yet (or after a rebuild). */
export type StartFrom = 'beginning' | 'now' | Date;

/**
 * What a handler receives: one event of the events container. `E` is what the subscriber's serializer
 * decodes, e.g. `SubscribedEvent<EventEnvelope>` with `JsonEventSerializer`; a handler of event classes
 * (`@OnStoredEvent(OrderPlaced)`) gets the typed event as its first argument and this as its second.
 */
export interface SubscribedEvent<E = unknown> {
  /** The stream (the events container's partition key, e.g. `Order/42`), as `EventFilter.aggregateIdPrefix` sees it. */
  streamId: string;
  /**
   * The aggregate's type as repositories name it: what precedes the first `/` of the stream id (`Order` for
   * `Order/42`); absent for a stream id without `/` (a raw stream, or protosource's).
   */
  aggregateType?: string;
  /**
   * The aggregate's id as repositories take it: what follows the first `/` of the stream id (`42` for
   * `Order/42`); the whole stream id when it has no `/`.
   */
  aggregateId: string;
  version: number;
  /** The stored bytes. */
  data: Uint8Array;
  /** `data` decoded by the subscriber's serializer; absent without one. */
  event?: E;
  /** The decoded event's type name (see `EventDeserializer.typeOf`); absent without a serializer. */
  type?: string;
  /** The event's id, from its envelope's metadata; absent for events stored before metadata, or without a serializer. */
  eventId?: string;
  /** The story the event belongs to (the command's correlation id); absent as `eventId` is. */
  correlationId?: string;
  /** The id of what caused the event (another event, or the correlation id for a story's first command). */
  causationId?: string;
  /** When Cosmos DB committed the event (second precision). */
  committedAt: Date;
  /** 1 on the first delivery attempt in this process, more on retries after a failure. */
  attempt: number;
  /**
   * Aborted when the reader is asked to stop (shutdown, hand-over, lease lost): a handler that waits or retries
   * by itself should give up then; a handler failing after it is not dead-lettered, its page is read again.
   */
  signal?: AbortSignal;
}

/** A failing handler's retries: `attempts` tries in all, waiting `initialDelayMs`, doubling up to `maxDelayMs`. */
export interface RetryOptions {
  /** Tries in all, including the first. Default 5. */
  attempts?: number;
  /** Default 200 ms. */
  initialDelayMs?: number;
  /** Default 10 s. */
  maxDelayMs?: number;
}

/**
 * What happens to an event whose handler still fails after the last retry. In both cases a dead-letter
 * record goes to the leases container first; nothing is skipped without one.
 * - `dead-letter`: the subscriber moves on to the next event of other aggregates; the failing event's aggregate
 *   is parked: its later events wait (recorded durably on Cosmos DB, in memory in the in-memory
 *   subscriptions) and are delivered in order once the dead letter is replayed or discarded.
 * - `stop`: the consumer group halts on every instance, its checkpoint before the event, until `resume()`.
 */
export type FailurePolicy = 'dead-letter' | 'stop';

/** Options of `@Subscriber()`. */
export interface SubscriberOptions {
  /** The consumer group: its checkpoints, leases and dead letters are kept under this name. Unique per leases container. */
  name: string;
  /** Where the group starts when it has no checkpoint. Default `'beginning'`. */
  startFrom?: StartFrom;
  /** Decodes `data` into `event`: an object with `deserialize`, or the injection token of one. */
  serializer?: EventDeserializer | InjectionToken;
  /** Default: the module's `retry`. */
  retry?: RetryOptions;
  /** Default: the module's `onFailure` (`'dead-letter'`). */
  onFailure?: FailurePolicy;
  /** Events read per change feed page; the checkpoint advances once per page. Default: the module's (100). */
  maxItemCount?: number;
  /** Aggregates handled in parallel within a page (each aggregate's events stay in order). Default 1. */
  concurrency?: number;
}

/**
 * Which events a handler takes; absent: all events (snapshots excepted). `aggregateIdPrefix` is decided from
 * the stored document, before anything is decoded: an event no handler's prefix admits is passed over, never
 * decoded, retried or dead-lettered (a raw record, or another writer's stream in a shared container).
 */
export interface EventFilter {
  /** Decoded event types (see `EventDeserializer.typeOf`; needs a serializer). */
  types?: readonly string[];
  /** Aggregate ids starting with this, e.g. `Order/`. */
  aggregateIdPrefix?: string;
  /**
   * Snapshot records (see `EventDeserializer.isSnapshot`) reach this handler too. Default `false`: a
   * snapshot is a copy of an aggregate's state, not an event. Telling them apart needs a serializer.
   */
  snapshots?: boolean;
}

/** An `EventFilter` whose types are event classes: its handler receives the typed event. */
export interface TypedEventFilter<C extends EventClass = EventClass> extends Omit<EventFilter, 'types'> {
  /** Event classes, by their stored type name (`static type`, else the class name, as `@On` reads it). */
  events: readonly C[];
}

/**
 * A subscriber may implement this to clear its read model when `rebuild()` resets its consumer group: it runs
 * once, on the instance that called `rebuild()`, after every instance has let go of the group and before it
 * reads again.
 */
export interface OnSubscriberRebuild {
  onRebuild(from: StartFrom): void | Promise<void>;
}

/** Options of `SubscriptionsModule.forRoot`. */
export interface SubscriptionsModuleOptions {
  /** Container for leases, checkpoints and dead letters (partition key `/group`). Default `leases`. */
  leasesContainerId?: string;
  /** Create the leases container at start-up when missing. Default `true`. */
  ensure?: boolean;
  /**
   * This instance's name in leases, logs, `lag()` and dead letters. Default: host name, process id and a
   * random suffix. A label, not what ownership rests on: each start of the subscriptions also writes a random
   * session into the leases it takes, and a lease is this instance's only when both match. Two live processes
   * given the same id by mistake therefore still never read one range at once (they only look alike in logs);
   * a unique id per process keeps them apart for people, it is not needed for safety. (Among processes of a
   * version with sessions: an older one sharing the id takes any lease under it as its own.)
   */
  instanceId?: string;
  /**
   * A lease not renewed for this long can be taken over. Also what a crash costs: the ranges a crashed process
   * held are read again (by its restart under the same `instanceId` too, which cannot tell its former self
   * from a live twin) only once its leases expire; a graceful shutdown releases them at once. Default 30 s.
   */
  leaseDurationMs?: number;
  /** How often leases are renewed and balanced; well under `leaseDurationMs`. Default 5 s. */
  renewIntervalMs?: number;
  /** Wait after the change feed had nothing new. Default 1 s. */
  pollIntervalMs?: number;
  /** Default for subscribers that give none. Default 100. */
  maxItemCount?: number;
  /** Default for subscribers that give none. */
  retry?: RetryOptions;
  /** Default for subscribers that give none. Default `'dead-letter'`. */
  onFailure?: FailurePolicy;
  /** Start reading when the application starts. Default `true`; otherwise call `start()`. */
  autoStart?: boolean;
  /** How long shutdown waits for in-flight handlers before leaving the leases to expire. Default 10 s. */
  shutdownTimeoutMs?: number;
  /**
   * Seconds a dead letter is kept before Cosmos DB deletes it (its per-item `ttl`; the leases container needs
   * TTL enabled, as `ensure` creates it). Default: kept until replayed or discarded. A parked aggregate whose
   * letter expires stays parked: settle letters before they expire.
   */
  deadLetterTtlSeconds?: number;
  /**
   * How many leases a consumer group is cut into (at least one per physical partition): sub-ranges of the hash
   * space, so that up to this many instances share the work even on a container of one physical partition.
   * Each aggregate's events fall in one sub-range, so its order holds. Leases of a group created before are
   * cut when free, each part resuming at the whole lease's checkpoint: nothing is read twice. Default 8.
   */
  leases?: number;
}

/** A consumer group's state, shared by every instance through the leases container. */
export type GroupState = 'running' | 'rebuilding' | 'stopped';

/** How far one feed range of a consumer group is behind, from its checkpoint. */
export interface RangeLag {
  /** The feed range, as `minInclusive-maxExclusive` effective partition keys. */
  range: string;
  /**
   * The instance id of the holder, when one holds a live lease. Two processes configured with the same id
   * show the same name here, though each holds its own leases.
   */
  owner?: string;
  /**
   * Changes not yet checkpointed, estimated from log sequence numbers as Cosmos DB's change feed estimator
   * does: exact for single writes, a transactional batch counts once.
   */
  estimatedPending: number;
  /** Commit time of the oldest change not yet checkpointed. */
  oldestPendingAt?: Date;
}

/** How far a subscriber (consumer group) is behind, over all its feed ranges. */
export interface SubscriberLag {
  name: string;
  state: GroupState | 'not-started';
  estimatedPending: number;
  /** Milliseconds since the oldest change not yet checkpointed was committed; 0 when caught up. */
  behindMs: number;
  /** Aggregates parked behind a dead letter, across every range (their waiting events are not in `estimatedPending`). */
  parkedAggregates: string[];
  /** Why the group stopped, when it did. */
  reason?: string;
  /** Who stopped the group, when it is stopped: a handler's failure (policy `stop`), or an operator (`stopGroup`). */
  stoppedBy?: 'failure' | 'operator';
  ranges: RangeLag[];
}

/** What this instance is doing for one subscriber. */
export interface SubscriberStatus {
  name: string;
  /** Feed ranges this instance holds leases on. */
  ownedRanges: string[];
  /** Events handled by this instance since it started. */
  handled: number;
  /** Events no handler takes (by stream, type or as snapshots), passed over by this instance since it started. */
  passedOver: number;
  /** Events that went to a dead-letter record on this instance since it started. */
  deadLettered: number;
  /**
   * Aggregates parked on the ranges this instance reads: a handler gave up on one of their events (policy
   * `dead-letter`), and their later events wait until that dead letter is replayed or discarded.
   */
  parkedAggregates: string[];
  /** The last error seen (reading, checkpointing or handling), if any. */
  lastError?: string;
}

/** An event a handler could not handle, recorded in the leases container. */
export interface DeadLetter {
  /** The record's id within its subscriber: what `replayDeadLetter` and `discardDeadLetter` take. */
  id: string;
  subscriber: string;
  /** `Class.method` of the failing handler, or `(deserialize)` when the serializer failed. */
  handler: string;
  aggregateId: string;
  version: number;
  data: Uint8Array;
  error: { name: string; message: string };
  attempts: number;
  failedAt: Date;
  instanceId: string;
  /** What the group did next: moved on, or stopped. */
  policy: FailurePolicy;
  /** When Cosmos DB committed the event; absent in records written before it was kept. */
  committedAt?: Date;
}

/** Options of `rebuild()`. */
export interface RebuildOptions {
  /** Where to read again from. Default `'beginning'`. */
  from?: StartFrom;
  /** How long to wait for every instance to let go of the group. Default: two lease durations. */
  timeoutMs?: number;
}

/** Options of `stopGroup()`. */
export interface StopGroupOptions {
  /** Why, shown by `lag()`, the health indicator and the CLI's `groups`. Default `stopped by an operator`. */
  reason?: string;
}

/**
 * Control and observation of the subscriptions of this application (token `SUBSCRIPTIONS`).
 *
 * @example
 * constructor(@InjectSubscriptions() private readonly subscriptions: Subscriptions) {}
 * const [lag] = await this.subscriptions.lag('order-stats');
 */
export interface Subscriptions {
  /** Names of the registered subscribers. */
  names(): string[];
  /** This instance's work per subscriber. */
  status(): SubscriberStatus[];
  /** How far each subscriber (or the named one) is behind, read from the checkpoints of every instance. */
  lag(name?: string): Promise<SubscriberLag[]>;
  /** Resolves once the subscriber has checkpointed every change committed before the call. */
  waitForCatchUp(name: string, options?: { timeoutMs?: number }): Promise<void>;
  /**
   * Resets the consumer group to `from` on every instance: it pauses the group, waits until every instance
   * has let go of it (finishing in-flight handlers), calls the subscriber's `onRebuild`, rewinds every
   * checkpoint and lets the group run again.
   */
  rebuild(name: string, options?: RebuildOptions): Promise<void>;
  /**
   * Stops the consumer group on every instance, on purpose (maintenance, say), until `resume(name)`: this
   * instance's readers finish the page in hand, checkpoint it and let go before the call resolves (waiting
   * at most `shutdownTimeoutMs`), the other instances' readers do the same at their next lease check (within
   * `renewIntervalMs`). Nothing is lost or skipped: what is committed meanwhile waits, and `resume` reads on
   * from the checkpoints. A group already stopped stays as it is (with its reason); a group never started
   * yet is recorded as stopped, so no instance reads it until resumed. Rejects with
   * `RebuildInProgressError` while a rebuild runs (a rebuild lets the group run at its end, so it would undo
   * the stop: stop it once the rebuild is done), and with a `SubscriptionError` while a rebuild that timed
   * out leaves the group paused (call `rebuild()` again first). Not `stop()`, which ends this instance's
   * reading only.
   *
   * @example
   * await subscriptions.stopGroup('order-stats', { reason: 'read model migration' });
   * // ... later, on any instance:
   * await subscriptions.resume('order-stats');
   */
  stopGroup(name: string, options?: StopGroupOptions): Promise<void>;
  /**
   * Lets a stopped group run again from its checkpoint, whether it stopped on a failure (policy `stop`) or by
   * `stopGroup`. After a failure, the event it stopped at is delivered again, unless its dead letter was
   * replayed or discarded since (then the handler that failed is passed over for that event). Nothing
   * happens to a group that is not stopped.
   */
  resume(name: string): Promise<void>;
  /** The dead-letter records of a subscriber, oldest first. */
  deadLetters(name: string): Promise<DeadLetter[]>;
  /**
   * One page of a subscriber's dead letters (at most `maxItems`, default 100, in no promised order) and the
   * continuation to pass for the next page, absent after the last.
   */
  deadLetterPage(name: string, options?: { maxItems?: number; continuation?: string }): Promise<{ letters: DeadLetter[]; continuation?: string }>;
  /**
   * Hands a dead letter's event to the handler that failed on it once more (to every handler that takes it,
   * for a letter of the serializer), then removes the record. A handler that fails again keeps the record
   * and rejects with `DeadLetterReplayError`; `UnknownDeadLetterError` when there is no such record.
   */
  replayDeadLetter(name: string, id: string): Promise<void>;
  /**
   * Removes a dead letter without handling its event; `UnknownDeadLetterError` when there is no such record.
   * The event a group stopped at, once discarded, is passed over by its handler on resume and by rebuilds;
   * once replayed, only until the next rebuild (which starts the read model afresh).
   */
  discardDeadLetter(name: string, id: string): Promise<void>;
  /** Starts reading (only needed with `autoStart: false`). */
  start(): Promise<void>;
  /** Stops reading: finishes in-flight handlers, checkpoints and releases the leases. */
  stop(): Promise<void>;
}
