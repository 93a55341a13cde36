import { createHash } from 'node:crypto';
import type { Container, ItemDefinition, JSONObject, OperationInput } from '@azure/cosmos';
import { statusOf } from '../cosmos/index.js';
import { fetchAllOfPartition } from '../event-store/single-partition-query.js';
import type { DeadLetter, FailurePolicy, GroupState, StartFrom } from './subscriptions.interfaces.js';
import { sleep } from './sleep.js';

/** Longest pause between two attempts at the group document's state. */
const MAX_STATE_RETRY_DELAY_MS = 200;
/** Most settled events a group document keeps (the oldest go first). */
const MAX_SETTLED = 100;

/*
 * Documents of the leases container, all of one consumer group in one logical partition (`group`), so a
 * group is listed with one single-partition query:
 * - `group`: the group's shared state (running, rebuilding, stopped on a failure), and the events whose
 *   dead letter of policy `stop` was replayed or discarded (`settled`), which a resumed group passes over;
 * - `lease:<min>-<max>`: one per feed range: holder (owner and session), expiry, checkpoint (the change feed
 *   continuation);
 * Dead letters and parked events live outside the group's partition (a flood of them must not fill the 20 GB
 * logical partition the leases are written in): in a partition per aggregate, `<group>:dead:<hash of the
 * aggregate id>`, so that each aggregate's parked events are read in one single-partition query:
 * - `dead:<hash>`: one per event a handler gave up on;
 * - `parked:<hash>`: one per event of a parked aggregate, waiting for its dead letter to be settled.
 * Every write of a lease or of the group is conditional on the ETag read before it, so two instances never
 * both believe they took the same lease.
 */

/** A start position as stored: "now" is pinned to a time when the lease is created, so every reader agrees. */
export type StoredStart = { kind: 'beginning' } | { kind: 'time'; at: number };

export interface GroupDocument extends ItemDefinition {
  id: 'group';
  group: string;
  type: 'group';
  state: GroupState;
  reason?: string;
  /** Set when an operator stopped the group (`stopGroup`); absent: stopped on a handler's failure. */
  stoppedBy?: 'operator';
  /** Events (with the handler that failed) an admin settled: replayed (until a rebuild) or discarded. */
  settled?: SettledEvent[];
  updatedAt: number;
}

/** A handler's failure on one event that was settled by hand: the handler is not called for it again. */
export interface SettledEvent {
  aggregateId: string;
  version: number;
  /** `Class.method`, or `(deserialize)`: the whole event. */
  handler: string;
  /**
   * Discarded rather than replayed: a rebuild passes it over too (the read model never had it), while a
   * replayed event is handled again by a rebuild, which starts from an empty read model.
   */
  discarded?: boolean;
}

export interface LeaseDocument extends ItemDefinition {
  id: string;
  group: string;
  type: 'lease';
  feedRange: { minInclusive: string; maxExclusive: string };
  /** The instance id of the holder (as configured: what logs and `lag()` show), or null. */
  owner: string | null;
  /**
   * The holder's session: one start of the subscriptions. Absent in leases written before sessions existed,
   * which are then nobody's here until they expire or are released.
   */
  session?: string | null;
  /** Epoch ms (owner's clock) after which others may take the lease. */
  expiresAt: number;
  /** The instance id of one that asked the owner to hand the lease over, for balance. */
  requestedBy: string | null;
  /** The session of `requestedBy`. */
  requestedSession?: string | null;
  /** The change feed continuation up to which every event was handled; null: start at `startFrom`. */
  continuation: string | null;
  startFrom: StoredStart;
  checkpointedAt: number | null;
  /**
   * Aggregates of this range parked after a handler gave up on one of their events (policy `dead-letter`):
   * their later events wait as parked documents until that dead letter is replayed or discarded. Written with
   * the checkpoint, so a takeover keeps them parked.
   */
  parked?: ParkedAggregate[];
}

/** An aggregate whose events wait behind a dead letter. */
export interface ParkedAggregate {
  aggregateId: string;
  /** The event the handler gave up on, and the handler (`Class.method` or `(deserialize)`). */
  version: number;
  handler: string;
  letterId: string;
}

/** An event of a parked aggregate, as stored while it waits. */
export interface ParkedEvent {
  aggregateId: string;
  version: number;
  data: Uint8Array;
  committedAt: Date;
}

interface ParkedDocument extends ItemDefinition {
  id: string;
  group: string;
  subscriber: string;
  type: 'parked';
  aggregateId: string;
  version: number;
  d: string;
  committedAt: number;
}

interface DeadLetterDocument extends ItemDefinition {
  id: string;
  group: string;
  subscriber: string;
  type: 'dead-letter';
  handler: string;
  aggregateId: string;
  version: number;
  d: string;
  error: { name: string; message: string };
  attempts: number;
  failedAt: number;
  instanceId: string;
  policy: FailurePolicy;
  committedAt?: number;
}

const DEAD_LETTER_PREFIX = 'dead:';

/** The lock that lets one rebuild of a group run at a time, across instances. */
interface RebuildLockDocument extends ItemDefinition {
  id: 'rebuild';
  group: string;
  type: 'rebuild';
  holder: string;
  startedAt: number;
  expiresAt: number;
}

export type Stored<T> = T & { _etag: string };

/**
 * Who holds (or asks for) a lease: the configured instance id, shown in logs and `lag()`, and a session, a
 * random nonce drawn at every start of the subscriptions. The id alone proves nothing: two live processes
 * may be configured with the same one by mistake, and a restarted process cannot tell whether the leases
 * its id holds are those of its crashed former self or of such a twin. A lease is ours only when both match.
 */
export interface Holder {
  readonly instanceId: string;
  readonly session: string;
}

/** True when `holder` holds `lease` (whether or not it has expired). */
export function isHeldBy(lease: LeaseDocument, holder: Holder): boolean {
  return lease.owner === holder.instanceId && lease.session === holder.session;
}

/** True when the hand-over request on `lease` is `holder`'s. */
export function isRequestedBy(lease: LeaseDocument, holder: Holder): boolean {
  return lease.requestedBy === holder.instanceId && lease.requestedSession === holder.session;
}

export function rangeKey(range: { minInclusive: string; maxExclusive: string }): string {
  return `${range.minInclusive}-${range.maxExclusive}`;
}

export function leaseId(range: { minInclusive: string; maxExclusive: string }): string {
  return `lease:${rangeKey(range)}`;
}

export function toStoredStart(from: StartFrom, now = Date.now()): StoredStart {
  if (from === 'beginning') return { kind: 'beginning' };
  return { kind: 'time', at: from === 'now' ? now : from.getTime() };
}

function isStoredStart(from: StartFrom | StoredStart): from is StoredStart {
  return typeof from === 'object' && !(from instanceof Date);
}

/** A lease nobody holds, reading from `start`: how a lease is created and how a rebuild resets one. */
export function unclaimed(
  start: StoredStart,
): Pick<LeaseDocument, 'owner' | 'session' | 'expiresAt' | 'requestedBy' | 'requestedSession' | 'continuation' | 'startFrom' | 'checkpointedAt'> {
  return {
    owner: null,
    session: null,
    expiresAt: 0,
    requestedBy: null,
    requestedSession: null,
    continuation: null,
    startFrom: start,
    checkpointedAt: null,
  };
}

export class LeaseStore {
  constructor(
    readonly container: Container,
    readonly group: string,
    /** Seconds a dead letter is kept (Cosmos DB's per-item `ttl`); undefined: until replayed or discarded. */
    private readonly deadLetterTtlSeconds?: number,
  ) {}

  /** The partition of an aggregate's dead letters and parked events. */
  deadPartition(aggregateId: string): string {
    return `${this.group}:dead:${aggregateHash(aggregateId)}`;
  }

  /** The group document and every lease, in one single-partition query. */
  async list(): Promise<{ group?: Stored<GroupDocument>; leases: Stored<LeaseDocument>[] }> {
    // One request: a single-partition query needs no query plan (see `singlePartitionQuery`).
    const resources = await fetchAllOfPartition<Stored<GroupDocument | LeaseDocument>>(
      this.container,
      { query: "SELECT * FROM c WHERE c.type = 'lease' OR c.type = 'group'", parameters: [] },
      { partitionKey: this.group },
    );
    return {
      group: resources.find((doc): doc is Stored<GroupDocument> => doc.type === 'group'),
      leases: resources
        .filter((doc): doc is Stored<LeaseDocument> => doc.type === 'lease')
        .sort((x, y) => x.feedRange.minInclusive.localeCompare(y.feedRange.minInclusive)),
    };
  }

  /** Creates the group document and one lease per feed range, where missing (a concurrent creator wins). */
  async initialize(ranges: Array<{ minInclusive: string; maxExclusive: string }>, startFrom: StartFrom | StoredStart): Promise<void> {
    const now = Date.now();
    const start = isStoredStart(startFrom) ? startFrom : toStoredStart(startFrom, now);
    const group: GroupDocument = { id: 'group', group: this.group, type: 'group', state: 'running', updatedAt: now };
    await this.createIfMissing(group);
    for (const range of ranges) {
      await this.createIfMissing({
        id: leaseId(range),
        group: this.group,
        type: 'lease',
        feedRange: { minInclusive: range.minInclusive, maxExclusive: range.maxExclusive },
        ...unclaimed(start),
      } satisfies LeaseDocument);
    }
  }

  async read<T extends GroupDocument | LeaseDocument>(id: string): Promise<Stored<T> | undefined> {
    const { resource } = await this.container.item(id, this.group).read<Stored<T>>();
    return resource;
  }

  /** Replaces `doc` if it still has `etag`; `undefined` when someone changed it since (HTTP 412). */
  async replace<T extends GroupDocument | LeaseDocument>(doc: T, etag: string): Promise<Stored<T> | undefined> {
    const body = withoutSystemFields(doc);
    try {
      const { resource } = await this.container
        .item(doc.id as string, this.group)
        .replace<T>(body as T, { accessCondition: { type: 'IfMatch', condition: etag } });
      return resource as Stored<T>;
    } catch (err) {
      if (statusOf(err) === 412 || statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  /**
   * Writes `lease` (taken by this instance) if neither it nor the group document changed since they were read,
   * in one transactional batch: a take is fenced by the group's state, so no instance takes a lease from a
   * group another instance has just paused for a rebuild or stopped. The group document is rewritten as it
   * is, only to move its ETag. `undefined` when either changed.
   */
  async takeFenced(
    group: Stored<GroupDocument>,
    lease: LeaseDocument,
    leaseEtag: string,
  ): Promise<{ group: Stored<GroupDocument>; lease: Stored<LeaseDocument> } | undefined> {
    const operations: OperationInput[] = [
      { operationType: 'Replace', id: group.id, resourceBody: withoutSystemFields(group), ifMatch: group._etag },
      { operationType: 'Replace', id: lease.id, resourceBody: withoutSystemFields(lease), ifMatch: leaseEtag },
    ];
    const response = await this.container.items.batch(operations, this.group);
    const results = response.result ?? [];
    if (results.length !== 2 || results.some((r) => r.statusCode >= 400)) {
      // 412 (someone else was first) is the expected failure; anything else is worth a retry later too.
      return undefined;
    }
    return {
      group: results[0].resourceBody as unknown as Stored<GroupDocument>,
      lease: results[1].resourceBody as unknown as Stored<LeaseDocument>,
    };
  }

  /**
   * Replaces a free lease by leases over its sub-ranges, each resuming at the whole lease's position clipped
   * to it, in one transactional batch conditional on the lease's ETag: nothing is read twice, and two
   * instances never both cut it. False when the lease changed since it was read.
   */
  async cutLease(lease: Stored<LeaseDocument>, parts: ReadonlyArray<{ feedRange: { minInclusive: string; maxExclusive: string }; continuation: string | null }>): Promise<boolean> {
    // The whole lease becomes a tombstone (conditional on its ETag; a batch delete takes no condition), which
    // no listing returns, and is deleted once the cut is done.
    const tombstone = { id: lease.id, group: this.group, type: 'cut', into: parts.map((p) => leaseId(p.feedRange)) };
    const operations: OperationInput[] = [
      { operationType: 'Replace', id: lease.id, resourceBody: tombstone, ifMatch: lease._etag },
      ...parts.map(
        (part): OperationInput => ({
          operationType: 'Create',
          resourceBody: {
            id: leaseId(part.feedRange),
            group: this.group,
            type: 'lease',
            feedRange: part.feedRange,
            ...unclaimed(lease.startFrom),
            continuation: part.continuation,
            checkpointedAt: lease.checkpointedAt,
          } satisfies LeaseDocument as unknown as JSONObject,
        }) as OperationInput,
      ),
    ];
    const response = await this.container.items.batch(operations, this.group);
    const results = response.result ?? [];
    if (results.length !== operations.length || results.some((r) => r.statusCode >= 400)) return false;
    await this.container
      .item(lease.id, this.group)
      .delete()
      .catch(() => undefined); // a tombstone left behind is harmless
    return true;
  }

  /** Sets the group's state (creating its document when missing), whatever it was. */
  async setState(state: GroupState, reason?: string): Promise<Stored<GroupDocument>> {
    for (let attempt = 0; ; attempt++) {
      // After a lost race (every lease take rewrites the group document too): a short, growing, random pause,
      // so instances contending for the document spread out rather than retry in lockstep.
      if (attempt > 0) await sleep(Math.random() * Math.min(MAX_STATE_RETRY_DELAY_MS, 5 * 2 ** attempt));
      const current = await this.read<GroupDocument>('group');
      const next: GroupDocument = { id: 'group', group: this.group, type: 'group', state, updatedAt: Date.now() };
      if (reason !== undefined) next.reason = reason;
      // A rebuild reads every event again for a read model started afresh: only what was discarded stays settled.
      const settled = state === 'rebuilding' ? current?.settled?.filter((s) => s.discarded) : current?.settled;
      if (settled && settled.length > 0) next.settled = settled;
      if (!current) {
        try {
          const { resource } = await this.container.items.create(next);
          return resource as Stored<GroupDocument>;
        } catch (err) {
          if (statusOf(err) !== 409) throw err;
          continue;
        }
      }
      const written = await this.replace(next, current._etag);
      if (written) return written;
    }
  }

  /**
   * Stops the group for an operator (see `Subscriptions.stopGroup`), unless a rebuild holds it: its lock is
   * live, or the state is `rebuilding` (one that timed out leaves it so). The write is conditional on the
   * ETag read with the state, so a rebuild that begins meanwhile is seen, not overwritten. A group already
   * stopped is left as it is. Answers the rebuild in the way (holder and start, when its lock tells them),
   * or undefined once the group is stopped.
   */
  async stopUnlessRebuilding(reason: string): Promise<{ holder?: string; startedAt?: number } | undefined> {
    const lock = await this.rebuildLock();
    if (lock && lock.expiresAt > Date.now()) return { holder: lock.holder, startedAt: lock.startedAt };
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) await sleep(Math.random() * Math.min(MAX_STATE_RETRY_DELAY_MS, 5 * 2 ** attempt));
      const current = await this.read<GroupDocument>('group');
      if (current?.state === 'rebuilding') return {};
      if (current?.state === 'stopped') return undefined;
      const next: GroupDocument = { id: 'group', group: this.group, type: 'group', state: 'stopped', reason, stoppedBy: 'operator', updatedAt: Date.now() };
      if (current?.settled && current.settled.length > 0) next.settled = current.settled;
      if (!current) {
        // Never started: the instances that start it later find it stopped.
        try {
          await this.container.items.create(next);
          return undefined;
        } catch (err) {
          if (statusOf(err) !== 409) throw err;
          continue;
        }
      }
      if (await this.replace(next, current._etag)) return undefined;
    }
  }

  /** Records that `event` is settled for its handler, keeping the group's state (see `GroupDocument.settled`). */
  async settle(event: SettledEvent): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) await sleep(Math.random() * Math.min(MAX_STATE_RETRY_DELAY_MS, 5 * 2 ** attempt));
      const current = await this.read<GroupDocument>('group');
      if (!current) return; // no group yet: nothing to pass over
      const entry: SettledEvent = { aggregateId: event.aggregateId, version: event.version, handler: event.handler };
      if (event.discarded) entry.discarded = true;
      const settled = [...(current.settled ?? []), entry];
      if (await this.replace({ ...current, settled: settled.slice(-MAX_SETTLED) }, current._etag)) return;
    }
  }

  /** Writes a dead letter (again: the id depends on the event and handler only) and answers its id. */
  async writeDeadLetter(letter: Omit<DeadLetter, 'subscriber' | 'id'>): Promise<string> {
    const bytes = Buffer.from(letter.data.buffer, letter.data.byteOffset, letter.data.byteLength);
    // Aggregate ids may hold characters Cosmos DB forbids in ids and be 2 KB long: the id is a digest, whose
    // first 16 digits name the aggregate's partition (so that a letter is read by its id alone).
    const digest = createHash('sha256')
      .update(JSON.stringify([letter.aggregateId, letter.version, letter.handler]))
      .digest('hex')
      .slice(0, 24);
    const id = `${aggregateHash(letter.aggregateId)}${digest}`;
    const doc: DeadLetterDocument = {
      id: `${DEAD_LETTER_PREFIX}${id}`,
      group: this.deadPartition(letter.aggregateId),
      subscriber: this.group,
      type: 'dead-letter',
      handler: letter.handler,
      aggregateId: letter.aggregateId,
      version: letter.version,
      d: bytes.toString('base64'),
      error: letter.error,
      attempts: letter.attempts,
      failedAt: letter.failedAt.getTime(),
      instanceId: letter.instanceId,
      policy: letter.policy,
    };
    if (letter.committedAt) doc.committedAt = letter.committedAt.getTime();
    if (this.deadLetterTtlSeconds !== undefined) doc.ttl = this.deadLetterTtlSeconds;
    // An upsert: a retried write after a lost answer must not fail on its own first attempt.
    await this.container.items.upsert(doc);
    return id;
  }

  /** Every dead letter of the group, oldest first (a cross-partition query: see `deadLetterPage` to page). */
  async deadLetters(): Promise<DeadLetter[]> {
    const letters: DeadLetter[] = [];
    let continuation: string | undefined;
    do {
      const page = await this.deadLetterPage({ maxItems: 100, continuation });
      letters.push(...page.letters);
      continuation = page.continuation;
    } while (continuation);
    return letters.sort((x, y) => x.failedAt.getTime() - y.failedAt.getTime());
  }

  /** One page of the group's dead letters (in no promised order), and the continuation of the next. */
  async deadLetterPage(options: { maxItems?: number; continuation?: string } = {}): Promise<{ letters: DeadLetter[]; continuation?: string }> {
    const response = await this.container.items
      .query<DeadLetterDocument>(
        { query: "SELECT * FROM c WHERE c.type = 'dead-letter' AND c.subscriber = @group", parameters: [{ name: '@group', value: this.group }] },
        { maxItemCount: options.maxItems ?? 100, continuationToken: options.continuation },
      )
      .fetchNext();
    const letters = response.resources.map((doc) => this.toDeadLetter(doc));
    return response.continuationToken ? { letters, continuation: response.continuationToken } : { letters };
  }

  /** One dead letter by its id (as `deadLetters()` gives it), or undefined. */
  async deadLetter(id: string): Promise<DeadLetter | undefined> {
    if (!DEAD_LETTER_ID.test(id)) return undefined;
    const { resource } = await this.container.item(`${DEAD_LETTER_PREFIX}${id}`, this.partitionOfLetter(id)).read<DeadLetterDocument>();
    return resource?.type === 'dead-letter' && resource.subscriber === this.group ? this.toDeadLetter(resource) : undefined;
  }

  /** Deletes a dead letter; false when it was not there. */
  async deleteDeadLetter(id: string): Promise<boolean> {
    if (!DEAD_LETTER_ID.test(id)) return false;
    try {
      await this.container.item(`${DEAD_LETTER_PREFIX}${id}`, this.partitionOfLetter(id)).delete();
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw err;
    }
  }

  private partitionOfLetter(id: string): string {
    return `${this.group}:dead:${id.slice(0, 16)}`;
  }

  /**
   * Takes the group's rebuild lock (document `rebuild` in the group's partition) for `holder` until
   * `expiresAt`: created, or taken over once expired. The lock that stands in the way when it is not free.
   */
  async lockRebuild(
    holder: string,
    expiresAt: number,
  ): Promise<{ taken: true; etag: string; startedAt: number } | { taken: false; holder: string; startedAt: number }> {
    const now = Date.now();
    const doc: RebuildLockDocument = { id: 'rebuild', group: this.group, type: 'rebuild', holder, startedAt: now, expiresAt };
    for (;;) {
      try {
        const { resource } = await this.container.items.create(doc);
        return { taken: true, etag: (resource as unknown as Stored<RebuildLockDocument>)._etag, startedAt: now };
      } catch (err) {
        if (statusOf(err) !== 409) throw err;
      }
      const { resource: current } = await this.container.item('rebuild', this.group).read<Stored<RebuildLockDocument>>();
      if (!current) continue; // released meanwhile
      if (current.expiresAt > Date.now()) return { taken: false, holder: current.holder, startedAt: current.startedAt };
      try {
        const { resource } = await this.container
          .item('rebuild', this.group)
          .replace(doc, { accessCondition: { type: 'IfMatch', condition: current._etag } });
        return { taken: true, etag: (resource as unknown as Stored<RebuildLockDocument>)._etag, startedAt: now };
      } catch (err) {
        if (statusOf(err) !== 412 && statusOf(err) !== 404) throw err;
      }
    }
  }

  /** Extends the rebuild lock `holder` took; the new ETag, or undefined when the lock is no longer ours. */
  async renewRebuild(etag: string, holder: string, startedAt: number, expiresAt: number): Promise<string | undefined> {
    const doc: RebuildLockDocument = { id: 'rebuild', group: this.group, type: 'rebuild', holder, startedAt, expiresAt };
    try {
      const { resource } = await this.container.item('rebuild', this.group).replace(doc, { accessCondition: { type: 'IfMatch', condition: etag } });
      return (resource as unknown as Stored<RebuildLockDocument> | undefined)?._etag;
    } catch (err) {
      if (statusOf(err) === 412 || statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  /** The group's rebuild lock as it stands, or undefined when nobody holds it. */
  async rebuildLock(): Promise<{ holder: string; startedAt: number; expiresAt: number } | undefined> {
    const { resource } = await this.container.item('rebuild', this.group).read<Stored<RebuildLockDocument>>();
    return resource ? { holder: resource.holder, startedAt: resource.startedAt, expiresAt: resource.expiresAt } : undefined;
  }

  /** Lets the rebuild lock go (when still ours). */
  async unlockRebuild(etag: string): Promise<void> {
    try {
      await this.container.item('rebuild', this.group).delete({ accessCondition: { type: 'IfMatch', condition: etag } });
    } catch (err) {
      if (statusOf(err) !== 412 && statusOf(err) !== 404) throw err;
    }
  }

  /** Records an event of a parked aggregate (idempotent: a page read again writes the same document). */
  async park(event: ParkedEvent): Promise<void> {
    const bytes = Buffer.from(event.data.buffer, event.data.byteOffset, event.data.byteLength);
    const doc: ParkedDocument = {
      id: `parked:${createHash('sha256').update(JSON.stringify([event.aggregateId, event.version])).digest('hex').slice(0, 40)}`,
      group: this.deadPartition(event.aggregateId),
      subscriber: this.group,
      type: 'parked',
      aggregateId: event.aggregateId,
      version: event.version,
      d: bytes.toString('base64'),
      committedAt: event.committedAt.getTime(),
    };
    await this.container.items.upsert(doc);
  }

  /** An aggregate's parked events, in version order. */
  async parkedEvents(aggregateId: string): Promise<Array<ParkedEvent & { id: string }>> {
    const resources = await fetchAllOfPartition<ParkedDocument>(
      this.container,
      {
        query: "SELECT * FROM c WHERE c.type = 'parked' AND c.subscriber = @group AND c.aggregateId = @a",
        parameters: [
          { name: '@group', value: this.group },
          { name: '@a', value: aggregateId },
        ],
      },
      { partitionKey: this.deadPartition(aggregateId) },
    );
    return resources
      .sort((x, y) => x.version - y.version)
      .map((doc) => {
        const bytes = Buffer.from(doc.d, 'base64');
        return {
          id: doc.id,
          aggregateId: doc.aggregateId,
          version: doc.version,
          data: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
          committedAt: new Date(doc.committedAt),
        };
      });
  }

  /**
   * For a rebuild from `start`: deletes every parked event of the group (the rebuild reads them again) and
   * every dead letter whose event the rebuild reads again (all of them from the beginning; from a time, those
   * committed at or after it). A handler that fails again on such an event writes its letter again; a letter
   * kept would let a replay hand its event to a read model that has had the aggregate's later events since.
   * Answers how many documents it deleted. One cross-partition query per page.
   */
  async purgeForRebuild(start: StoredStart): Promise<number> {
    const { resources } = await this.container.items
      .query<Pick<ParkedDocument | DeadLetterDocument, 'id' | 'group' | 'type'> & { committedAt?: number }>({
        query: "SELECT c.id, c.group, c.type, c.committedAt FROM c WHERE c.subscriber = @group AND (c.type = 'parked' OR c.type = 'dead-letter')",
        parameters: [{ name: '@group', value: this.group }],
      })
      .fetchAll();
    const doomed = resources.filter(
      (doc) => doc.type === 'parked' || start.kind === 'beginning' || (doc.committedAt !== undefined && doc.committedAt >= start.at),
    );
    for (const doc of doomed) {
      try {
        await this.container.item(doc.id, doc.group).delete();
      } catch (err) {
        if (statusOf(err) !== 404) throw err;
      }
    }
    return doomed.length;
  }

  /** Deletes a parked event once handled (or parked again behind a new dead letter). */
  async unpark(aggregateId: string, id: string): Promise<void> {
    try {
      await this.container.item(id, this.deadPartition(aggregateId)).delete();
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
  }

  private toDeadLetter(doc: DeadLetterDocument): DeadLetter {
    const bytes = Buffer.from(doc.d, 'base64');
    const letter: DeadLetter = {
      id: doc.id.slice(DEAD_LETTER_PREFIX.length),
      subscriber: this.group,
      handler: doc.handler,
      aggregateId: doc.aggregateId,
      version: doc.version,
      data: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      error: doc.error,
      attempts: doc.attempts,
      failedAt: new Date(doc.failedAt),
      instanceId: doc.instanceId,
      policy: doc.policy,
    };
    if (typeof doc.committedAt === 'number') letter.committedAt = new Date(doc.committedAt);
    return letter;
  }

  private async createIfMissing(doc: GroupDocument | LeaseDocument): Promise<void> {
    try {
      await this.container.items.create(doc);
    } catch (err) {
      if (statusOf(err) !== 409) throw err;
    }
  }
}

/** What a dead letter's id looks like: the hex digest its document id carries. */
const DEAD_LETTER_ID = /^[0-9a-f]{40}$/;

/** 16 hex digits of an aggregate id's hash: names its dead-letter partition. */
function aggregateHash(aggregateId: string): string {
  return createHash('sha256').update(aggregateId).digest('hex').slice(0, 16);
}

function withoutSystemFields<T extends object>(doc: T): T & ItemDefinition {
  const copy = { ...doc } as Record<string, unknown>;
  for (const field of ['_etag', '_rid', '_self', '_ts', '_attachments', '_lsn']) delete copy[field];
  return copy as T & ItemDefinition;
}
