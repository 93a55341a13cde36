import { Logger } from '@nestjs/common';
import { clone, create, fromBinary, toBinary, type DescMessage, type Message, type MessageInitShape, type Registry } from '@bufbuild/protobuf';
import {
  compressAtOrAbove,
  decompressIfGzipped,
  NotFoundError,
  ValidationError,
  type EventRecord,
  type OpaqueStore,
  type OperationOptions,
  type SnapshotTailStore,
  type SortCondition,
} from '../event-store/index.js';
import { ProtosourceEventCodec, PROTOSOURCE_COMPRESS_THRESHOLD, SNAPSHOT_ACTOR, type ProtosourceEncoding } from './protosource-codec.js';
import {
  AGGREGATE_SORT_KEY,
  fieldNamed,
  protosourceIndexSlots,
  protosourceIndexValue,
  protosourcePartitionKey,
  protosourceProjectionSortKey,
  protosourceStreamId,
  type ProtosourceIndexes,
} from './protosource-keys.js';
import { ProtosourceCommandError } from './protosource.errors.js';
import { MAX_DOCUMENT_BYTES } from '../event-store/cosmos-limits.js';
import { CommandPipeline, readMaterialized, type CommandStrategy, type Decision } from '../event-sourcing/command-pipeline.js';
import { currentEventContext } from '../event-sourcing/event-context.js';
import { randomUUID } from 'node:crypto';

export { SNAPSHOT_ACTOR } from './protosource-codec.js';

/** Returned by a command's `evaluate` to do nothing (protosource's `ErrSkip`): no events, the current version. */
export const SKIP = Symbol('protosource.skip');

/** The four fields every protosource event starts with. */
export interface ProtosourceEventFields {
  id: string;
  version: bigint;
  /** Unix microseconds. */
  at: bigint;
  actor: string;
}

/** A view stored beside the aggregate, under sort key `PROJ#<message name>` (protosource `Projector`). */
export interface ProtosourceProjection<A extends Message> {
  schema: DescMessage;
  project(aggregate: A): Message;
  indexes?: ProtosourceIndexes;
}

/**
 * An aggregate as protosource's generator describes it, for `ProtosourceRepository`: what Go generates from
 * the `.proto` annotations, written out.
 */
export interface ProtosourceAggregateDefinition<A extends Message> {
  /** The aggregate message (with `id = 1` and `version = 2`); its package names streams and keys. */
  schema: DescMessage & { readonly $type?: A };
  /** Every event message type of the aggregate, the snapshot's included. */
  registry: Registry;
  /** protosource's `On`: folds one domain event into the aggregate, in place (id and version are set before). */
  on(aggregate: A, event: Message): void;
  /** protosource's `PostApplyHook.AfterOn`: derived fields, once after events are applied. */
  afterOn?(aggregate: A): void;
  /** The `<package>.Snapshot` message (`snapshot = 5` holds the aggregate) and the interval; absent: none. */
  snapshot?: { schema: DescMessage; every: number };
  /** The aggregate's secondary-index slots. */
  indexes?: ProtosourceIndexes;
  projections?: ReadonlyArray<ProtosourceProjection<A>>;
  /** The aggregate's state, for `allowedStates`; default its `state` field. */
  stateOf?(aggregate: A): number;
  /** Event payload encoding written (both are read). Default `binary`. */
  encoding?: ProtosourceEncoding;
  /** Gzip event payloads and materialized bodies from this many bytes; 0: never. Default 300. */
  compressThreshold?: number;
}

/** One event a command emits: its type and its own fields (the repository fills in id, version, at and actor). */
export interface ProtosourceEmitted {
  schema: DescMessage;
  fields?: Record<string, unknown>;
}

/** A command, as protosource's generated pipeline runs it. */
export interface ProtosourceCommand<A extends Message> {
  /** The command's message name, for errors (`AddItem`). */
  name: string;
  /** The aggregate id (un-namespaced). */
  id: string;
  /** Who asks: the authenticated caller, never a field of the request body. */
  actor: string;
  /** `creation` needs a new aggregate (version 0), `mutation` an existing one. */
  lifecycle: 'creation' | 'mutation';
  /** The states the aggregate must be in (protosource `allowed_states`); absent: any. */
  allowedStates?: readonly number[];
  /** A problem with the command's fields (protosource's `ProtoValidate`), or nothing. */
  validate?(): string | undefined;
  /** protosource's `CommandEvaluator`: `SKIP` to do nothing, throw to refuse. */
  evaluate?(aggregate: A): typeof SKIP | void;
  emit(aggregate: A): readonly ProtosourceEmitted[];
}

export interface LoadedAggregate<A> {
  aggregate: A;
  version: number;
}

/** What a protosource command stores: its events (the snapshot's included) and their records. */
interface ProtosourceDecided {
  events: Array<Message & ProtosourceEventFields>;
  records: EventRecord[];
}

/**
 * An event-sourced aggregate stored exactly as protosource's Go `AggregateRepository` stores it, so both read each
 * other's streams and views and run commands on the same aggregates:
 *
 * - events: stream id `<package with _>#<id>`, one document per event with `id = String(version)`, the payload
 *   an `Any` of the event message (binary, or protojson with `encoding: 'json'`), gzip from 300 bytes;
 *   a version already taken fails with `ConcurrencyError`, as Go's create does;
 * - snapshots: after an event whose version is a multiple of `every`, a `<package>.Snapshot` event (actor
 *   `snapshot@system`, the aggregate in field 5) at the next version; loading reads the last `every` events
 *   and starts from the newest snapshot among them (reading the whole stream when they hold none);
 * - materialized views: after each command, best-effort (a failure is logged, the command still succeeds),
 *   the aggregate's protobuf under pk `<package with _>#<name lower case>#id#<id>`, sk `AGG`, and each
 *   projection under `PROJ#<Name>`, with protosource's index values (`NA` for unmapped slots), no `version`
 *   and an upsert, as Go writes them (a slower writer can leave an older view, in Go as here).
 *
 * @example
 * const orders = new ProtosourceRepository(orderDefinition, { events, opaque });
 * const version = await orders.apply(placeOrder);
 * const { aggregate } = await orders.load('o-1');
 */
export class ProtosourceRepository<A extends Message> {
  readonly codec: ProtosourceEventCodec;
  private readonly logger = new Logger('ProtosourceRepository');
  private readonly compressThreshold: number;
  private readonly pipeline: CommandPipeline<ProtosourceCommand<A>, LoadedAggregate<A>, ProtosourceDecided>;

  constructor(
    readonly definition: ProtosourceAggregateDefinition<A>,
    private readonly stores: { events: SnapshotTailStore; opaque: OpaqueStore },
  ) {
    checkDefinition(definition);
    this.compressThreshold = definition.compressThreshold ?? PROTOSOURCE_COMPRESS_THRESHOLD;
    this.codec = new ProtosourceEventCodec({
      registry: definition.registry,
      encoding: definition.encoding,
      compressThreshold: this.compressThreshold,
    });
    // One run per command: a lost race fails with ConcurrencyError, as Go's create does.
    this.pipeline = new CommandPipeline(this.strategy(), { maxAttempts: 1, maxElapsedMs: Number.POSITIVE_INFINITY, initialDelayMs: 0, maxDelayMs: 0 });
  }

  /** The events container's stream id of an aggregate. */
  streamId(id: string): string {
    return protosourceStreamId(this.definition.schema, id);
  }

  /** Rebuilds the aggregate from its events (from its newest snapshot on); `NotFoundError` when it has none. */
  async load(id: string, options?: OperationOptions): Promise<LoadedAggregate<A>> {
    checkId(id);
    const { snapshot } = this.definition;
    let history = snapshot
      ? await this.stores.events.loadTail(this.streamId(id), snapshot.every, options)
      : await this.stores.events.load(this.streamId(id), options);
    if (history.records.length === 0) throw new NotFoundError(`no ${this.definition.schema.name} ${JSON.stringify(id)}`);
    let events = history.records.map((record) => this.decodeRecord(record));
    if (snapshot && history.records[0].version > 1 && !events.some((e) => e.$typeName === snapshot.schema.typeName)) {
      // A tail without a snapshot that does not start the stream (written without snapshots, or with another
      // interval): protosource would fold it onto an empty aggregate; the whole stream gives the true state.
      history = await this.stores.events.load(this.streamId(id), options);
      events = history.records.map((record) => this.decodeRecord(record));
    }
    // protosource replays the whole tail; a snapshot restores every field, so starting at the newest is the same.
    let start = 0;
    for (let i = events.length - 1; i >= 0; i--) {
      if (snapshot && events[i].$typeName === snapshot.schema.typeName) {
        start = i;
        break;
      }
    }
    const aggregate = create(this.definition.schema) as A;
    for (const event of events.slice(start)) this.fold(aggregate, event);
    this.definition.afterOn?.(aggregate);
    return { aggregate, version: history.records[history.records.length - 1].version };
  }

  /**
   * The whole stream as protosource's `History` gives it: each record's version, decompressed data and ttl;
   * empty for an unknown aggregate, as Go's.
   */
  async history(id: string, options?: OperationOptions): Promise<EventRecord[]> {
    checkId(id);
    const { records } = await this.stores.events.load(this.streamId(id), options);
    return records.map((r) => ({ version: r.version, data: new Uint8Array(decompressIfGzipped(r.data)), ...(r.ttl ? { ttl: r.ttl } : {}) }));
  }

  /** Every event of the stream, decoded. */
  async events(id: string, options?: OperationOptions): Promise<Array<Message & ProtosourceEventFields>> {
    const { records } = await this.stores.events.load(this.streamId(id), options);
    return records.map((record) => this.decodeRecord(record));
  }

  /**
   * Runs a command through protosource's pipeline (lifecycle, validation, allowed states, evaluation, events,
   * snapshot) and stores its events; resolves the version they end at. Refusals are
   * `ProtosourceCommandError`s with protosource's codes; a concurrent writer of the same version makes it
   * fail with `ConcurrencyError`.
   */
  async apply(command: ProtosourceCommand<A>, options?: OperationOptions): Promise<number> {
    return this.pipeline.run(command, options);
  }

  /**
   * protosource's steps of the command pipeline shared with `AggregateRepository`: the state in the stream (Go's
   * documents, no tip), protobuf events, no re-run of a lost race (Go's `ConcurrencyError` surfaces, as
   * Go's create fails). Commands of this process on one aggregate still queue, so they never race.
   */
  private strategy(): CommandStrategy<ProtosourceCommand<A>, LoadedAggregate<A>, ProtosourceDecided> {
    return {
      streamOf: (command) => {
        if (!command?.id) throw new ProtosourceCommandError('CMD_EMPTY_ID', 'aggregate id is required');
        return this.streamId(command.id);
      },
      load: async (command, _attempt, options) => {
        try {
          return await this.load(command.id, options);
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err;
          return { aggregate: create(this.definition.schema) as A, version: 0 };
        }
      },
      decide: (command, loaded) => this.decide(command, loaded),
      save: (command, _loaded, { records }, options) => this.stores.events.save(this.streamId(command.id), records, { ...options, atomic: true }),
      materialize: (_command, { aggregate }, { events }, options) => this.materialize(aggregate, events, options),
      contention: (_command, conflict) => conflict,
    };
  }

  /** protosource's pipeline on the loaded state: lifecycle, validation, allowed states, evaluation, events, snapshot, then the encoding guard. */
  private decide(command: ProtosourceCommand<A>, loaded: LoadedAggregate<A>): Decision<ProtosourceDecided> {
    const { aggregate } = loaded;
    const current = Number((aggregate as unknown as ProtosourceEventFields).version);
    if (command.lifecycle === 'creation' && current !== 0) {
      throw new ProtosourceCommandError('CMD_ALREADY_CREATED', `command ${command.name} requires a new aggregate (version 0), got version ${current}`);
    }
    if (command.lifecycle === 'mutation' && current === 0) {
      throw new ProtosourceCommandError('CMD_NOT_CREATED', `command ${command.name} requires an existing aggregate (version > 0), got version 0`);
    }
    const problem = command.validate?.();
    if (problem) throw new ProtosourceCommandError('CMD_VALIDATION', `command ${command.name}: command validation failed: ${problem}`);
    if (command.allowedStates) {
      const state = this.stateOf(aggregate);
      if (!command.allowedStates.includes(state)) {
        throw new ProtosourceCommandError('CMD_STATE_VIOLATION', `command ${command.name} not allowed in state ${this.stateName(state)}`);
      }
    }
    if (command.evaluate?.(aggregate) === SKIP) return { answer: loaded.version };

    const { events, after } = this.emit(command, aggregate, current);
    if (events.length === 0) return { answer: loaded.version };
    // Everything the command would store is encoded first: an event, a state or a view protobuf cannot
    // encode (an int64 overflow, say) refuses the command with a ValidationError, and nothing is stored.
    // The event context's ids (as the JSON repository stamps them in its envelope) go beside the protobuf
    // bytes, in the document's field `m`, which Go ignores: the protobuf event stays as Go writes it.
    const context = currentEventContext();
    const correlationId = context?.correlationId ?? randomUUID();
    const causationId = context?.causationId ?? correlationId;
    const records = events.map((event) => ({
      version: Number(event.version),
      data: encodeOrRefuse(`events[${Number(event.version) - current - 1}]`, () => this.codec.encode(this.schemaOf(event), event)),
      metadata: { eventId: randomUUID(), correlationId, causationId },
    }));
    this.checkViews(after);
    return { store: { events, records }, version: Number(events[events.length - 1].version) };
  }

  /**
   * The materialized aggregate (`GET .../{id}` in protosource), never older than its stream: the stream's
   * last version is read beside the document, and a document that is behind (its materialization failed, or
   * its instance died before it) or missing gives way to the aggregate rebuilt from the events, which is
   * written back. `NotFoundError` when the aggregate has no events and no document. Within one instance a
   * `get` after a command acknowledged with version N answers N or later (see `AggregateRepository.get`).
   */
  async get(id: string, options?: OperationOptions): Promise<A> {
    checkId(id);
    return readMaterialized<A>({
      document: () =>
        this.stores.opaque.get(protosourcePartitionKey(this.definition.schema, id), AGGREGATE_SORT_KEY, options).then(
          (doc) => this.decodeBody(doc.body),
          (err: unknown) => {
            if (err instanceof NotFoundError) return undefined;
            throw err;
          },
        ),
      versionOf: (aggregate) => Number((aggregate as unknown as ProtosourceEventFields).version),
      lastVersion: async () => (await this.stores.events.loadTail(this.streamId(id), 1, options)).records[0]?.version ?? 0,
      rebuild: async () => (await this.load(id, options)).aggregate,
      // Go's documents carry no version to order writes by: this is an upsert, as Go's own materialization is.
      repair: (aggregate) => this.materialize(aggregate, [], options),
      notFound: () => new NotFoundError(`no ${this.definition.schema.name} ${JSON.stringify(id)}`),
    });
  }

  /**
   * Materialized aggregates by a secondary-index slot, ascending by its sort key: `pk` holds the values of
   * the slot's pk fields, `sk` an optional condition on its sort-key fields (`value`/`value2` give the
   * field values; they are turned into index values here).
   */
  async query(
    slot: number,
    pk: Record<string, unknown>,
    sk?: { op: SortCondition['op']; value: Record<string, unknown>; value2?: Record<string, unknown> },
    options?: OperationOptions,
  ): Promise<A[]> {
    const index = this.definition.indexes?.[slot];
    if (!index?.pk?.length) throw new ValidationError('slot', `${this.definition.schema.name} maps no fields to index slot ${slot}`);
    const { schema } = this.definition;
    const condition: SortCondition | undefined = sk && {
      op: sk.op,
      value: protosourceIndexValue(schema, sk.value, index.sk ?? []),
      ...(sk.value2 && { value2: protosourceIndexValue(schema, sk.value2, index.sk ?? []) }),
    };
    const out: A[] = [];
    let continuationToken: string | undefined;
    do {
      const page = await this.stores.opaque.query(
        { index: slot, pk: protosourceIndexValue(schema, pk, index.pk), sk: condition, continuationToken },
        options,
      );
      // The slot is shared by every message type in the container; keep this aggregate's documents.
      for (const item of page.items) if (item.sk === AGGREGATE_SORT_KEY) out.push(this.decodeBody(item.body));
      continuationToken = page.continuationToken;
    } while (continuationToken);
    return out;
  }

  /**
   * Encodes what materialization will store for the state after the command (the aggregate, each
   * projection, their index slots, within Cosmos DB's item limit): a `ValidationError` naming the field
   * when one cannot be stored, so the command is refused before its events are.
   */
  private checkViews(after: A): void {
    const state = clone(this.definition.schema, after) as A;
    this.definition.afterOn?.(state);
    const { schema, projections = [], indexes } = this.definition;
    const views: Array<{ schema: DescMessage; message: () => Message; indexes?: ProtosourceIndexes; field: string }> = [
      { schema, message: () => state, indexes, field: 'state' },
      ...projections.map((p, i) => ({ schema: p.schema, message: () => p.project(state), indexes: p.indexes, field: `projections[${i}]` })),
    ];
    for (const view of views) {
      const message = encodeOrRefuse(view.field, view.message);
      const body = encodeOrRefuse(view.field, () => compressAtOrAbove(toBinary(view.schema, message), this.compressThreshold));
      encodeOrRefuse(`${view.field} index slots`, () => protosourceIndexSlots(view.schema, message, view.indexes));
      // The body travels base64 in a JSON document: 4/3 of its bytes, within Cosmos DB's 2 MB item limit.
      if (Math.ceil(body.byteLength / 3) * 4 > MAX_DOCUMENT_BYTES) {
        throw new ValidationError(view.field, `makes a materialized body of ${body.byteLength} bytes; Cosmos DB items are limited to 2 MB`);
      }
    }
  }

  private emit(command: ProtosourceCommand<A>, aggregate: A, current: number): { events: Array<Message & ProtosourceEventFields>; after: A } {
    const after = clone(this.definition.schema, aggregate) as A;
    const events: Array<Message & ProtosourceEventFields> = [];
    let version = current;
    const at = nowMicros();
    for (const { schema, fields } of command.emit(aggregate)) {
      const event = create(schema, {
        ...fields,
        id: command.id,
        version: BigInt(++version),
        at,
        actor: command.actor,
      } as MessageInitShape<DescMessage>) as Message & ProtosourceEventFields;
      this.fold(after, event);
      events.push(event);
    }
    const { snapshot } = this.definition;
    if (snapshot && version % snapshot.every === 0) {
      this.definition.afterOn?.(after);
      events.push(
        create(snapshot.schema, {
          id: command.id,
          version: BigInt(version + 1),
          at: nowMicros(),
          actor: SNAPSHOT_ACTOR,
          snapshot: clone(this.definition.schema, after),
        } as MessageInitShape<DescMessage>) as Message & ProtosourceEventFields,
      );
    }
    return { events, after };
  }

  private async materialize(aggregate: A, events: ReadonlyArray<Message & ProtosourceEventFields>, options?: OperationOptions): Promise<void> {
    for (const event of events) this.fold(aggregate, event);
    this.definition.afterOn?.(aggregate);
    const { schema, projections = [], indexes } = this.definition;
    const id = (aggregate as unknown as ProtosourceEventFields).id;
    const pk = protosourcePartitionKey(schema, id);
    const views: Array<{ schema: DescMessage; message: Message; sk: string; indexes?: ProtosourceIndexes }> = [
      { schema, message: aggregate, sk: AGGREGATE_SORT_KEY, indexes },
      ...projections.map((p) => ({ schema: p.schema, message: p.project(aggregate), sk: protosourceProjectionSortKey(p.schema), indexes: p.indexes })),
    ];
    for (const view of views) {
      try {
        const gsi = protosourceIndexSlots(view.schema, view.message, view.indexes);
        await this.stores.opaque.put(
          { pk, sk: view.sk, body: compressAtOrAbove(toBinary(view.schema, view.message), this.compressThreshold), ...(gsi && { gsi }) },
          options,
        );
      } catch (err) {
        // Events are the source of truth: the command succeeded, the view catches up with the next one.
        this.logger.warn(`materializing ${view.schema.name} ${JSON.stringify(id)} failed: ${(err as Error).message}`);
      }
    }
  }

  /** protosource's `On`: id and version from the event, then the domain's fold, or the snapshot's restore. */
  private fold(aggregate: A, event: Message & ProtosourceEventFields): void {
    const target = aggregate as unknown as ProtosourceEventFields;
    const { snapshot } = this.definition;
    if (snapshot && event.$typeName === snapshot.schema.typeName) {
      const state = (event as unknown as { snapshot?: A }).snapshot;
      if (state) Object.assign(aggregate, clone(this.definition.schema, state));
    } else {
      this.definition.on(aggregate, event);
    }
    target.id = event.id;
    target.version = event.version;
  }

  private decodeRecord(record: EventRecord): Message & ProtosourceEventFields {
    const event = this.codec.decode(record.data) as Message & ProtosourceEventFields;
    return event;
  }

  private decodeBody(body: Uint8Array): A {
    return fromBinary(this.definition.schema, decompressIfGzipped(body)) as A;
  }

  private schemaOf(event: Message): DescMessage {
    const schema = this.definition.registry.getMessage(event.$typeName);
    if (!schema) throw new ValidationError('event', `type ${event.$typeName} is not in the aggregate's registry`);
    return schema;
  }

  private stateOf(aggregate: A): number {
    return this.definition.stateOf ? this.definition.stateOf(aggregate) : Number((aggregate as unknown as { state?: number }).state ?? 0);
  }

  private stateName(state: number): string {
    const field = this.definition.schema.fields.find((f) => f.name === 'state');
    return field?.fieldKind === 'enum' ? (field.enum.values.find((v) => v.number === state)?.name ?? String(state)) : String(state);
  }
}

function checkDefinition<A extends Message>(definition: ProtosourceAggregateDefinition<A>): void {
  if (!definition?.schema || definition.schema.kind !== 'message') throw new ValidationError('schema', 'must be the aggregate message schema');
  if (typeof definition.on !== 'function') throw new ValidationError('on', 'must fold an event into the aggregate');
  for (const [name, number] of [['id', 1], ['version', 2]] as const) {
    if (fieldNamed(definition.schema, name).number !== number) {
      throw new ValidationError('schema', `${definition.schema.typeName}.${name} must be field ${number}, as protosource expects`);
    }
  }
  const { snapshot } = definition;
  if (snapshot) {
    if (!Number.isSafeInteger(snapshot.every) || snapshot.every < 1) throw new ValidationError('snapshot.every', 'must be a positive integer');
    const state = fieldNamed(snapshot.schema, 'snapshot');
    if (state.number !== 5 || state.fieldKind !== 'message' || state.message.typeName !== definition.schema.typeName) {
      throw new ValidationError('snapshot.schema', `must hold the ${definition.schema.typeName} in field 5 "snapshot", as protosource writes it`);
    }
    if (!definition.registry.getMessage(snapshot.schema.typeName)) throw new ValidationError('registry', `must contain ${snapshot.schema.typeName}`);
  }
}

/**
 * Runs an encoding step; an error it throws becomes a `ValidationError` naming the field (protobuf-es says
 * which: "cannot encode field example.app.order.v1.Order.total_cents to binary: invalid int64: …").
 */
function encodeOrRefuse<T>(field: string, encode: () => T): T {
  try {
    return encode();
  } catch (err) {
    if (err instanceof ValidationError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    const named = /cannot encode field ([\w.]+) to binary: (.*)/s.exec(message);
    throw new ValidationError(named ? `${field}.${named[1].split('.').pop()}` : field, named ? named[2] : `cannot be encoded: ${message}`);
  }
}

function checkId(id: string): void {
  if (typeof id !== 'string' || id === '') throw new ValidationError('id', 'must be a non-empty string');
}

/** Unix microseconds, protosource's `NowMicros` (at microsecond resolution, so index sort keys rarely tie). */
function nowMicros(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000));
}
