/**
 * Where an event came from, stored beside its bytes (field `m` of the event document; an addition to
 * protosource's fields, which Go ignores): for stores whose event bytes cannot hold it (protosource mode's
 * protobuf events). The JSON repository keeps it in its envelope instead.
 */
export interface EventRecordMetadata {
  eventId?: string;
  correlationId?: string;
  causationId?: string;
}

/** One stored event: its version in the stream, its opaque bytes and an optional absolute expiry. */
export interface EventRecord {
  /** Position in the aggregate's stream: a positive safe integer. */
  version: number;
  /** The event's bytes, stored as standard base64. */
  data: Uint8Array;
  /**
   * Absolute expiry in Unix epoch seconds, which `save` refuses unless it is in the future (not seconds
   * from now); 0 or absent: never expires (or the store's `eventTtlSeconds`).
   */
  ttl?: number;
  /**
   * The event's type name, stored beside the bytes (field `y`) so `readAll` can select events by type
   * without reading their data. Optional: records without one are stored as protosource writes them.
   * `'$stream-deleted'` marks the tombstone of `deleteStream`.
   */
  type?: string;
  /** The event's ids, stored as field `m` (see `EventRecordMetadata`); absent: no field, the document as protosource writes it. */
  metadata?: EventRecordMetadata;
}

/** An aggregate's records, always ascending by version. */
export interface History {
  records: EventRecord[];
}

/** Options every store call accepts. */
export interface OperationOptions {
  /** Cancels the call; an already-aborted signal rejects before any request is sent. */
  abortSignal?: AbortSignal;
}

/** Options of `save`. */
export interface StoreSaveOptions extends OperationOptions {
  /**
   * All records or none: refuse (with a `ValidationError`, before any request) records that do not fit one
   * transactional batch (100 operations, 2 MB), instead of writing them in several all-or-nothing chunks.
   */
  atomic?: boolean;
  /**
   * What the caller believes the stream's last version is, checked inside the same transactional batch as
   * the first records (no extra round trip): a number N (the first record must then be version N+1; 0 is
   * the same as `'no-stream'`), `'no-stream'` (the first record must be version 1), or `'any'` (default: no
   * check beyond a taken version's conflict). A mismatch is an `ExpectedVersionError` naming the version
   * expected and the one found. Only the first chunk is checked: combine with `atomic` for all-or-nothing.
   */
  expectedVersion?: ExpectedVersion;
}

/** The stream state a `save` expects; see `StoreSaveOptions.expectedVersion`. */
export type ExpectedVersion = number | 'no-stream' | 'any';

/** Appends and reads event streams (protosource `Store`). */
export interface Store {
  /**
   * Appends records to an aggregate's stream. A version that already exists fails the call with a
   * `ConcurrencyError`; zero records send nothing.
   *
   * Records are written in all-or-nothing chunks (at most 100 records, one Cosmos DB transactional batch
   * each); the chunks of one call are not atomic with each other, and a failed chunk stops the call.
   *
   * Under faults (Cosmos DB store): throttling, 408, 503, timeouts and lost connections are retried. When
   * an attempt's outcome is unknown (the service may have applied the chunk but the answer was lost), the
   * chunk is resent with the very same documents; a conflict on the resend reads the versions back, and the
   * call succeeds if they hold byte for byte what was sent (`v`, `d`, `t`), else fails with
   * `ConcurrencyError`. So a successful write is never reported as an error or stored twice. A conflict
   * with no unknown outcome before it is a `ConcurrencyError` even when the bytes match. When the retries
   * run out with the outcome still unknown, or the signal aborts while a chunk may be on its way, the call
   * fails with `WriteOutcomeUnknownError`: load the aggregate to see whether the chunk landed.
   */
  save(aggregateId: string, records: readonly EventRecord[], options?: StoreSaveOptions): Promise<void>;
  /** The whole stream, ascending; an unknown aggregate gives an empty history. */
  load(aggregateId: string, options?: OperationOptions): Promise<History>;
}

/** Options of `readStream`. */
export interface ReadStreamOptions extends OperationOptions {
  /** Records fetched per request, and so the most held in memory at once. Default 1000. */
  pageSize?: number;
}

/**
 * A store that can read a stream page by page, without holding all of it: what `load` does for streams too
 * long to keep in memory.
 */
export interface StreamingStore extends Store {
  /**
   * The stream's live records, ascending, fetched `pageSize` at a time as the caller iterates. Same checks and
   * expiry rule as `load`; problems (a `ValidationError`, an aborted signal) surface on the first iteration,
   * before any request. Records appended while iterating may or may not be seen; none is seen twice.
   *
   * @example
   * for await (const record of store.readStream('order-1', { pageSize: 500 })) state = apply(state, record);
   */
  readStream(aggregateId: string, options?: ReadStreamOptions): AsyncIterable<EventRecord>;
}

/** A store that can read the newest `n` records without reading the rest (protosource `SnapshotTailStore`). */
export interface SnapshotTailStore extends Store {
  /** The last `n` records, ascending; `n <= 0` gives an empty history without a request. */
  loadTail(aggregateId: string, n: number, options?: OperationOptions): Promise<History>;
}

/** Options of `loadRange`: both bounds inclusive, either may be left out. */
export interface LoadRangeOptions extends OperationOptions {
  fromVersion?: number;
  toVersion?: number;
}

/** Options of `deleteStream`. */
export interface DeleteStreamOptions extends OperationOptions {
  /**
   * Seconds to keep the tombstone after the erasure, for subscribers that read the change feed late; absent
   * or 0: kept for good (it holds the aggregate id, a version and the type `'$stream-deleted'`, no data).
   * The stubs of the erased versions expire with it: then nothing of the stream is left, and its id can be used again.
   */
  tombstoneTtlSeconds?: number;
}

/**
 * A store whose streams can be read by version range, truncated and erased (plgd's `LoadFromVersion`,
 * `LoadUpToVersion`, `RemoveUpToVersion`).
 */
export interface StreamLifecycleStore extends Store {
  /** The live records with `fromVersion <= version <= toVersion`, ascending. */
  loadRange(aggregateId: string, options?: LoadRangeOptions): Promise<History>;
  /**
   * Removes the events before `version` (a snapshot's, typically), so long streams stay cheap to keep. The
   * stream's last event is always kept, and every removed event leaves a stub without a version or data
   * under its id, so its version stays taken: no save writes into it, a checked save expecting it is a
   * mismatch, and a `'no-stream'` save still sees the stream. Loads of what is left keep working. One listing
   * query, then batches of 100 stub writes; not atomic beyond a batch: a failure part-way leaves a shorter
   * prefix removed, and calling again finishes it.
   *
   * The store knows nothing of aggregates: on a repository's stream, cut only where a snapshot is the first
   * record kept, else neither the repository (without its tip) nor a read model rebuilt from the change feed
   * can rebuild the aggregate from what is left. `AggregateRepository.truncate(id)` writes that snapshot and cuts there.
   */
  truncateBefore(aggregateId: string, version: number, options?: OperationOptions): Promise<void>;
  /**
   * Erases a stream: appends a tombstone (version last + 1, type `'$stream-deleted'`, no data) that the
   * change feed hands to subscribers, so read models learn of the erasure, in the same transactional batch
   * as the first removals (none happens without it); and deletes every other
   * document of the aggregate's partition (its tip), replacing each event by a stub without a version or
   * data, so every erased version stays taken and nothing is written back into them. Loads afterwards return
   * the tombstone alone; a later `save` continues after it. An unknown or already erased stream is left as it is. Not
   * atomic: calling again after a failure finishes it.
   */
  deleteStream(aggregateId: string, options?: DeleteStreamOptions): Promise<void>;
}

/** Options of `readAll`. All filters combine; every one is served by the events container's index. */
export interface ReadAllOptions extends OperationOptions {
  /** Only events whose `type` is one of these (events stored without a type never match). */
  types?: readonly string[];
  /** Only streams of this aggregate type: stream ids that start with `<aggregateType>/`, as repositories name them. */
  aggregateType?: string;
  /** Only events committed at or after this time (the commit time has whole seconds). */
  since?: Date;
  /**
   * Only events committed before this time. Commits of the last seconds are never handed out, whatever
   * `until` says (the store's `readAllSettleSeconds`, default 2): a later commit in a second still open
   * could sort before a position already handed out.
   */
  until?: Date;
  /** Resume after this item's `position` (from an earlier `readAll` with the same filters). */
  after?: string;
  /** Items fetched per request. Default 1000. */
  pageSize?: number;
}

/** One event of `readAll`, with where it was committed and a position to resume after it. */
export interface ReadAllItem {
  aggregateId: string;
  record: EventRecord;
  /** When Cosmos DB committed it (`_ts`, whole seconds). */
  committedAt: Date;
  /** Opaque; `readAll({ after: position })` continues with the item after this one. */
  position: string;
}

/** A store that reads events across streams by type and commit time (plgd's `GetEvents`). */
export interface ReadAllStore {
  /**
   * Events of every stream, ordered by commit time, then stream id, then version; expired ones and
   * documents that are not events (the tip) never appear. Pages are fetched as the caller iterates; a
   * fault while paging ends the iteration with it: go on with `after` set to the last position handed out.
   *
   * @example
   * for await (const item of store.readAll({ types: ['OrderPlaced'], since: new Date('2026-01-01') })) {
   *   lastPosition = item.position;
   * }
   */
  readAll(options?: ReadAllOptions): AsyncIterable<ReadAllItem>;
}

/** A secondary-index slot's keys. */
export interface GsiKeys {
  pk?: string;
  sk?: string;
}

/** Secondary-index slots by number, 1 to 20. */
export type GsiSlots = Partial<Record<number, GsiKeys>>;

/** Where a materialized aggregate is stored and how it is indexed. */
export interface AggregateKeys {
  pk: string;
  sk: string;
  gsi?: GsiSlots;
}

/** An aggregate that can be materialized into the aggregates container. */
export interface Materializable {
  keys(): AggregateKeys;
  /** Stored as the document's `version` (omitted when 0 or absent). */
  version?: number;
  /** Seconds to keep the materialized document; absent or 0: kept forever. */
  ttlSeconds?: number;
}

/** Options of `saveAggregate`. */
export interface SaveAggregateOptions extends OperationOptions {
  /**
   * Write only when no live document at the aggregate's keys holds the same or a newer `version`, so a
   * slow writer never overwrites a newer state. Default `false`: upsert, as protosource does.
   */
  onlyIfNewer?: boolean;
}

/** Materializes aggregates into the aggregates container (protosource `AggregateStore`). */
export interface AggregateStore {
  /** Upserts the aggregate's JSON (its `toJSON` honoured) under its keys; see `onlyIfNewer`. */
  saveAggregate(aggregate: Materializable, options?: SaveAggregateOptions): Promise<void>;
}

/** A document of the aggregates container, as the store sees it. */
export interface OpaqueData {
  pk: string;
  sk: string;
  body: Uint8Array;
  version?: number;
  /** Absolute expiry, epoch seconds; absent or 0: never expires. */
  t?: number;
  gsi?: GsiSlots;
}

/** Sort-key operators, as protosource's opaquedata names them. */
export const SORT_OPERATORS = ['=', '<', '<=', '>', '>=', 'between', 'begins_with'] as const;
export type SortOperator = (typeof SORT_OPERATORS)[number];

/** A condition on the sort key of the index queried; `value2` is the upper bound of `between`. */
export interface SortCondition {
  op: SortOperator;
  value: string;
  value2?: string;
}

/** A query over the aggregates container: index 0 is the main key (`pk`/`sk`), 1–20 the secondary slots. */
export interface OpaqueQuery {
  index?: number;
  pk: string;
  sk?: SortCondition;
  /** Page size; the result carries a `continuationToken` when more items follow. */
  limit?: number;
  continuationToken?: string;
}

export interface OpaqueQueryResult {
  items: OpaqueData[];
  continuationToken?: string;
}

/** Key-value storage with secondary indexes behind `AggregateStore` (protosource `opaquedata.OpaqueStore`). */
export interface OpaqueStore {
  /** Inserts or replaces the document at `(pk, sk)`. */
  put(doc: OpaqueData, options?: OperationOptions): Promise<void>;
  /**
   * Inserts or replaces the document at `(pk, sk)` only when the live document there (if any) has a lower
   * `version` (absent counts as 0). Resolves `true` when it wrote, `false` when a newer version was kept.
   * Safe under concurrent writers: the check and the write are one conditional operation.
   */
  putIfNewer(doc: OpaqueData, options?: OperationOptions): Promise<boolean>;
  /** Throws `NotFoundError` when no live document is at `(pk, sk)`. */
  get(pk: string, sk: string, options?: OperationOptions): Promise<OpaqueData>;
  /** Deleting a missing document succeeds. */
  delete(pk: string, sk: string, options?: OperationOptions): Promise<void>;
  /** Ascending by the sort key of the index used; expired documents are never returned. */
  query(query: OpaqueQuery, options?: OperationOptions): Promise<OpaqueQueryResult>;
}
