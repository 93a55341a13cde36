import type { Logger } from '@nestjs/common';
import type { Container, FeedRange } from '@azure/cosmos';
import {
  isHeldBy,
  isRequestedBy,
  LeaseStore,
  rangeKey,
  toStoredStart,
  unclaimed,
  type GroupDocument,
  type Holder,
  type LeaseDocument,
  type SettledEvent,
  type Stored,
} from './lease-store.js';
import { balance } from './lease-balancer.js';
import { clipContinuation, cutRange, uncovered, WHOLE_HASH_SPACE } from './lease-layout.js';
import { LagEstimator } from './lag-estimator.js';
import { OwnedLease } from './owned-lease.js';
import { changeFeedContainer, FeedRanges } from './sdk-adapter.js';
import { RangeWorker } from './range-worker.js';
import { describe, type SubscriberRuntime } from './subscriber-runtime.js';
import { RebuildInProgressError, SubscriptionError, SubscriptionTimeoutError, UnknownDeadLetterError } from './subscriptions.errors.js';
import type { DeadLetter, GroupState, StartFrom, SubscriberLag, SubscriberStatus } from './subscriptions.interfaces.js';
import { sleep } from './sleep.js';

/** The module settings a group works with. */
export interface GroupSettings {
  instanceId: string;
  leaseDurationMs: number;
  renewIntervalMs: number;
  pollIntervalMs: number;
  shutdownTimeoutMs: number;
  deadLetterTtlSeconds?: number;
  /** Leases the group is cut into (see `SubscriptionsModuleOptions.leases`); default: one per physical partition. */
  leases?: number;
}

type Range = { minInclusive: string; maxExclusive: string };

/**
 * One subscriber (consumer group) on this instance. Every `renewIntervalMs` it renews the leases it holds, on
 * a timer of their own (no listing or other lease request waits in front of a renewal), and lists the group's
 * leases in one query and then: abandons a lease someone else now owns at once; hands
 * over, gracefully, a lease another instance asked for or every lease when the group is not running; takes
 * free or expired leases up to its fair share (ranges / live instances, rounded up); and, when still short by
 * two or more against the busiest instance, asks that instance for one. A reader per held lease does the work.
 * "This instance" is one start of the group: the configured instance id and the session `start()` is given.
 * A lease under the same id but another session (a second process configured with the same id, or this
 * process before a crash) is someone else's until it expires.
 */
export class SubscriberGroup {
  readonly store: LeaseStore;
  private readonly workers = new Map<string, RangeWorker>();
  private loop?: Promise<void>;
  private wake = new AbortController();
  private stopping = false;
  private feedRanges?: Promise<readonly FeedRange[]>;
  private readonly feedRangeObjects: FeedRanges;
  private readonly estimator: LagEstimator;
  private state?: GroupState;
  private session?: string;
  /** A start asked for while the loop of a timed-out stop was still finishing. */
  private restartWith?: string;
  /** The group document's settled events, as of the last look at it. */
  private settled: readonly SettledEvent[] = [];

  private readonly events: Container;

  constructor(
    events: Container,
    leases: Container,
    readonly runtime: SubscriberRuntime,
    private readonly startFrom: StartFrom,
    private readonly settings: GroupSettings,
    private readonly logger: Logger,
  ) {
    this.events = changeFeedContainer(events);
    this.store = new LeaseStore(leases, runtime.subscriber.name, settings.deadLetterTtlSeconds);
    this.feedRangeObjects = new FeedRanges(this.events, () => this.ranges());
    this.estimator = new LagEstimator({
      name: runtime.subscriber.name,
      events: this.events,
      store: this.store,
      startFrom,
      pollIntervalMs: settings.pollIntervalMs,
      // The hash space whole, rather than the container's ranges: a gap is the same gap either way, and knowing
      // it so costs no metadata request.
      missingRanges: async (leases) => (leases.length > 0 ? uncovered([WHOLE_HASH_SPACE], leases) : this.missingRanges(leases)),
      feedRangeOf: (range) => this.feedRangeOf(range),
    });
  }

  get name(): string {
    return this.runtime.subscriber.name;
  }

  /** How log lines name this group on this instance. */
  private get label(): string {
    return `${this.name}@${this.settings.instanceId}`;
  }

  status(): SubscriberStatus {
    const { handled, passedOver, deadLettered, lastError } = this.runtime.stats;
    return {
      name: this.name,
      ownedRanges: [...this.workers.values()].filter((w) => !w.stopping).map((w) => rangeKey(w.lease.document.feedRange)),
      handled,
      passedOver,
      deadLettered,
      parkedAggregates: [...this.workers.values()].flatMap((w) => w.parkedAggregates.map((p) => p.aggregateId)),
      ...(lastError === undefined ? {} : { lastError }),
    };
  }

  /** Who holds leases for this group now: the instance id and the session of the current start. */
  private get me(): Holder {
    if (this.session === undefined) throw new Error(`${this.label}: not started`);
    return { instanceId: this.settings.instanceId, session: this.session };
  }

  /**
   * Starts managing leases and reading under `session`, a nonce no other start of the subscriptions (in this
   * process or any other) uses: leases held under any other session are not this start's.
   */
  start(session: string): void {
    if (this.loop) {
      // A stop that ran out of time leaves its loop finishing a check: start again as soon as it has.
      if (this.stopping) this.restartWith = session;
      return;
    }
    this.stopping = false;
    this.session = session;
    this.loop = this.run().finally(() => {
      this.loop = undefined;
      const next = this.restartWith;
      this.restartWith = undefined;
      if (next !== undefined) this.start(next);
    });
  }

  /** Graceful stop: every reader finishes its page, checkpoints and releases; after the timeout, leases are left to expire. */
  async stop(): Promise<void> {
    this.restartWith = undefined;
    const loop = this.loop;
    if (!loop) return;
    const deadline = Date.now() + this.settings.shutdownTimeoutMs;
    this.stopping = true;
    const workers = [...this.workers.values()];
    const timeout = new AbortController();
    const finished = await Promise.race([
      Promise.all(workers.map((w) => w.stop())).then(() => true),
      sleep(this.settings.shutdownTimeoutMs, timeout.signal).then(() => false),
    ]);
    timeout.abort();
    if (!finished) {
      this.logger.warn(
        `${this.label}: handlers still running after ${this.settings.shutdownTimeoutMs} ms; leaving their leases to expire`,
      );
      for (const worker of workers) worker.abandon();
      // A handler that never settles must not hold the shutdown: stop waiting for its reader.
      this.workers.clear();
    }
    this.poke();
    // The loop ends once its check in progress has; a check stuck on an unanswered call must not hold the
    // shutdown past its timeout either.
    const remaining = new AbortController();
    const ended = await Promise.race([
      loop.then(() => true),
      sleep(Math.max(0, deadline - Date.now()), remaining.signal).then(() => false),
    ]);
    remaining.abort();
    if (!ended) {
      // (Already said when the readers were the ones that ran out of time.)
      if (finished) this.logger.warn(`${this.label}: managing leases still busy after ${this.settings.shutdownTimeoutMs} ms; not waiting for it`);
      for (const worker of this.workers.values()) worker.abandon();
      this.workers.clear();
    }
  }

  /** Wakes the loop now rather than at the next interval. */
  poke(): void {
    this.wake.abort();
  }

  private async run(): Promise<void> {
    // Renewals on their own timer: the loop's requests (listing, initializing, cutting, taking) are untimed, and
    // under throttling the SDK retries each for up to 30 s, as long as a default lease; a lease must not lapse
    // behind them. Each renewal is timed by its `OwnedLease` and joins a write already under way.
    const renewals = setInterval(() => {
      for (const worker of this.workers.values()) if (!worker.lease.lost) void this.renew(worker);
    }, this.settings.renewIntervalMs);
    try {
      await this.manage();
    } finally {
      clearInterval(renewals);
    }
  }

  private async manage(): Promise<void> {
    while (!(this.stopping && this.workers.size === 0)) {
      try {
        await this.tick();
      } catch (err) {
        this.runtime.stats.lastError = `managing leases failed: ${describe(err)}`;
        this.logger.warn(`${this.label}: ${this.runtime.stats.lastError}`);
      }
      if (this.stopping && this.workers.size === 0) break;
      this.wake = new AbortController();
      await sleep(this.settings.renewIntervalMs, this.wake.signal);
    }
  }

  private async tick(): Promise<void> {
    const me = this.me;
    // (Held leases are renewed on their own timer: see `run`.)
    let { group, leases } = await this.store.list();
    if (!this.stopping) {
      // Also after an interrupted initialize (the group and only some leases written): every feed range must
      // have its lease, or its events are never read.
      const missing = await this.missingRanges(leases);
      if (!group || missing.length > 0) {
        await this.store.initialize(await this.cut(missing, leases.length), leases[0]?.startFrom ?? this.startFrom);
        ({ group, leases } = await this.store.list());
      } else if (group.state === 'running' && (await this.cutOneFreeLease(leases))) {
        ({ group, leases } = await this.store.list());
      }
    }
    if (!group) return;
    this.settled = group.settled ?? [];
    if (group.state !== this.state) {
      if (this.state !== undefined || group.state !== 'running') {
        this.logger.log(`${this.label}: group is ${group.state}${group.reason ? ` (${group.reason})` : ''}`);
      }
      this.state = group.state;
    }
    const running = group.state === 'running' && !this.stopping;
    const byId = new Map(leases.map((lease) => [lease.id, lease]));

    for (const [id, worker] of this.workers) {
      const doc = byId.get(id);
      if (!doc || !isHeldBy(doc, me)) {
        // Taken over or reset since: someone else may be reading this range already.
        if (doc?.owner) this.logger.warn(`${this.label}: lost ${rangeKey(doc.feedRange)} to ${this.describeHolder(doc)}`);
        worker.abandon();
        continue;
      }
      if (!worker.stopping && (!running || (doc.requestedBy !== null && !isRequestedBy(doc, me)))) {
        if (running) this.logger.log(`${this.label}: handing ${rangeKey(doc.feedRange)} over to ${doc.requestedBy}`);
        void worker.stop();
      }
    }
    if (!running) return;

    const reading = new Set<string>();
    const windingDown = new Set<string>();
    for (const [id, worker] of this.workers) (worker.stopping ? windingDown : reading).add(id);
    const plan = balance({ leases, me, now: Date.now(), reading, windingDown });
    let mine = reading.size;
    for (const lease of plan.take) {
      if (mine >= plan.share) break;
      const taken = await this.take(group, lease);
      if (!taken) continue;
      group = taken;
      mine++;
    }
    const candidate = plan.request(mine);
    if (candidate) {
      // The owner hands it over at its next round, after finishing and checkpointing its page.
      await this.store.replace({ ...candidate, requestedBy: me.instanceId, requestedSession: me.session }, candidate._etag);
    }
  }

  /** Ranges without a lease, cut so that a new group gets `leases` in all (at least one per range). */
  private async cut(missing: Range[], existing: number): Promise<Range[]> {
    const desired = this.settings.leases ?? 1;
    if (missing.length === 0 || existing > 0) return missing;
    const physical = (await this.ranges()).length;
    const perRange = Math.max(1, Math.ceil(desired / Math.max(physical, 1)));
    return missing.flatMap((range) => cutRange(range, perRange));
  }

  /**
   * Migrates a group made with fewer leases than wanted: cuts one free lease (nobody holds it, none asked for
   * it, nothing parked on it) into sub-ranges, each resuming at its checkpoint. True when it cut one.
   */
  private async cutOneFreeLease(leases: ReadonlyArray<Stored<LeaseDocument>>): Promise<boolean> {
    const desired = this.settings.leases ?? 1;
    if (leases.length >= desired) return false;
    const now = Date.now();
    for (const lease of leases) {
      if ((lease.owner && lease.expiresAt > now) || lease.requestedBy !== null || (lease.parked?.length ?? 0) > 0) continue;
      const parts = cutRange(lease.feedRange, Math.min(desired - leases.length + 1, desired));
      if (parts.length < 2) continue;
      const positions = parts.map((feedRange) => ({ feedRange, continuation: clipContinuation(lease.continuation, feedRange) }));
      if (positions.some((p) => p.continuation === undefined)) continue;
      const done = await this.store.cutLease(lease, positions as Array<{ feedRange: Range; continuation: string | null }>);
      if (done) this.logger.log(`${this.label}: cut ${rangeKey(lease.feedRange)} into ${parts.length} leases`);
      return done;
    }
    return false;
  }

  /** A lease's holder for log lines: its instance id, and its session when that id is ours. */
  private describeHolder(lease: LeaseDocument): string {
    if (lease.owner !== this.settings.instanceId) return String(lease.owner);
    if (!lease.session) return `${lease.owner} (a lease written by a version without sessions)`;
    return `${lease.owner} (session ${lease.session}: another process runs under this instance id)`;
  }

  private async renew(worker: RangeWorker): Promise<void> {
    try {
      await worker.lease.renew();
    } catch (err) {
      if (worker.lease.lost) worker.abandon();
      else this.logger.warn(`${this.label}: renewing ${rangeKey(worker.lease.document.feedRange)} failed: ${describe(err)}`);
    }
  }

  /** Takes a free lease (fenced by the group's state) and starts its reader; the group document after, or undefined. */
  private async take(group: Stored<GroupDocument>, doc: Stored<LeaseDocument>): Promise<Stored<GroupDocument> | undefined> {
    const me = this.me;
    const range = await this.feedRangeOf(doc.feedRange);
    const taken = await this.store.takeFenced(
      group,
      {
        ...doc,
        owner: me.instanceId,
        session: me.session,
        expiresAt: Date.now() + this.settings.leaseDurationMs,
        requestedBy: null,
        requestedSession: null,
      },
      doc._etag,
    );
    if (!taken) return undefined;
    const lease = new OwnedLease(this.store, taken.lease, me, this.settings.leaseDurationMs);
    if (this.stopping) {
      // stop() began while this check was taking the lease: no reader may start after it; let the lease go.
      await lease.release().catch((err: unknown) => {
        this.logger.warn(`${this.label}: releasing ${rangeKey(doc.feedRange)} taken during shutdown failed (it will expire): ${describe(err)}`);
      });
      return undefined;
    }
    const name = rangeKey(doc.feedRange);
    const previous =
      doc.owner && !isHeldBy(doc, me) ? ` from ${doc.owner} (${doc.owner === me.instanceId ? 'another session, ' : ''}expired)` : '';
    this.logger.log(`${this.label}: took ${name}${previous}, ${doc.continuation ? 'resuming at its checkpoint' : 'from its start'}`);
    const worker = new RangeWorker({
      events: this.events,
      range,
      rangeName: name,
      lease,
      store: this.store,
      runtime: this.runtime,
      instanceId: me.instanceId,
      pollIntervalMs: this.settings.pollIntervalMs,
      logger: this.logger,
      onStopped: (reason) => this.halt(reason),
      isSettled: (event) => this.settled.some((s) => s.aggregateId === event.aggregateId && s.version === event.version && s.handler === event.handler),
    });
    this.workers.set(doc.id, worker);
    worker.start();
    void worker.done.finally(() => {
      if (this.workers.get(doc.id) === worker) this.workers.delete(doc.id);
      this.poke();
    });
    return taken.group;
  }

  /** Stops the group on every instance after a handler failed for good under policy `stop`. */
  private async halt(reason: string): Promise<void> {
    try {
      await this.store.setState('stopped', reason);
    } catch (err) {
      this.logger.error(`${this.label}: recording the stop failed: ${describe(err)}`);
    }
    for (const worker of this.workers.values()) void worker.stop();
    this.poke();
  }

  /**
   * Stops the group on every instance for an operator (see `Subscriptions.stopGroup`); this instance's readers
   * finish their page, checkpoint and let go, waited for at most `shutdownTimeoutMs`.
   */
  async stopGroup(reason: string): Promise<void> {
    const rebuild = await this.store.stopUnlessRebuilding(reason);
    if (rebuild?.holder !== undefined) throw new RebuildInProgressError(this.name, rebuild.holder, new Date(rebuild.startedAt ?? Date.now()));
    if (rebuild) {
      throw new SubscriptionError(`${JSON.stringify(this.name)} is paused by a rebuild that did not finish: call rebuild() again, then stop it`);
    }
    this.poke();
    const timeout = new AbortController();
    await Promise.race([Promise.all([...this.workers.values()].map((w) => w.stop())), sleep(this.settings.shutdownTimeoutMs, timeout.signal)]);
    timeout.abort();
  }

  /** Lets a stopped group run again. */
  async resume(): Promise<void> {
    const { group } = await this.store.list();
    if (group?.state === 'stopped') await this.store.setState('running');
    this.poke();
  }

  /** Replays a dead letter (see `Subscriptions.replayDeadLetter`); a letter that stopped the group is settled first. */
  async replayDeadLetter(id: string): Promise<void> {
    const letter = await this.deadLetter(id);
    await this.runtime.replay(letter);
    await this.settle(letter, false);
    await this.store.deleteDeadLetter(id);
  }

  /** Discards a dead letter; a letter that stopped the group is settled first, so a resume passes the event over. */
  async discardDeadLetter(id: string): Promise<void> {
    const letter = await this.deadLetter(id);
    await this.settle(letter, true);
    await this.store.deleteDeadLetter(id);
    this.logger.warn(`${this.label}: dead letter ${id} (${letter.handler} on ${letter.aggregateId}@${letter.version}) discarded`);
  }

  private async deadLetter(id: string): Promise<DeadLetter> {
    const letter = await this.store.deadLetter(id);
    if (!letter) throw new UnknownDeadLetterError(this.name, id);
    return letter;
  }

  /**
   * A `stop` letter's event is where the group's checkpoint waits: settled, a resume passes that handler over
   * for it instead of failing on it again (or, after a replay, calling it twice). A `dead-letter` letter's
   * aggregate is parked: settled, the reader of its range delivers the events that waited behind it.
   */
  private async settle(letter: DeadLetter, discarded: boolean): Promise<void> {
    await this.store.settle({ aggregateId: letter.aggregateId, version: letter.version, handler: letter.handler, discarded });
  }

  /**
   * Pauses the group everywhere, waits until no instance holds a lease, runs the subscriber's `onRebuild`,
   * deletes the group's parked events and the dead letters of the events it reads again, rewinds every lease
   * to `from` (unparking every aggregate), and lets the group run again. Throws `RebuildInProgressError`,
   * touching nothing more, once its lock was lost to another rebuild (checked before the hook, before the
   * purge, before each lease reset and before letting the group run).
   */
  async rebuild(from: StartFrom, timeoutMs: number): Promise<void> {
    // One rebuild at a time per group, across instances: the lock lives in the leases container, renewed
    // while the rebuild runs (its hook may take long), and taken over only once it has expired.
    const lockFor = () => Date.now() + 2 * this.settings.leaseDurationMs;
    const lock = await this.store.lockRebuild(this.settings.instanceId, lockFor());
    if (!lock.taken) throw new RebuildInProgressError(this.name, lock.holder, new Date(lock.startedAt));
    let etag: string = lock.etag;
    // Set once the lock is no longer ours (renewal answered 412/404: it expired and another rebuild took it):
    // this rebuild must not touch the group any more.
    let lost = false;
    // Renewals one after the other: two on the same ETag would make the second fail with 412, a false loss.
    let renewing: Promise<void> = Promise.resolve();
    const renew = (): Promise<void> =>
      (renewing = renewing.catch(() => undefined).then(async () => {
        if (lost) return;
        const next = await this.store.renewRebuild(etag, this.settings.instanceId, lock.startedAt, lockFor());
        if (next !== undefined) {
          etag = next;
          return;
        }
        lost = true;
        this.logger.error(`${this.label}: the rebuild lock was lost (it expired and was taken over); aborting this rebuild`);
      }));
    const renewal = setInterval(() => {
      renew().catch((err: unknown) => this.logger.warn(`${this.label}: renewing the rebuild lock failed: ${describe(err)}`));
    }, this.settings.renewIntervalMs);
    const stillLocked = async (): Promise<void> => {
      // Confirm with the store rather than trust the last renewal: an expired lock may have been taken since.
      await renew();
      if (lost) {
        const current = await this.store.rebuildLock().catch(() => undefined);
        throw new RebuildInProgressError(this.name, current?.holder ?? 'another instance', new Date(current?.startedAt ?? lock.startedAt));
      }
    };
    try {
      await this.rebuildLocked(from, timeoutMs, stillLocked);
    } finally {
      clearInterval(renewal);
      if (!lost) {
        await this.store.unlockRebuild(etag).catch((err: unknown) => {
          this.logger.warn(`${this.label}: releasing the rebuild lock failed (it expires): ${describe(err)}`);
        });
      }
    }
  }

  private async rebuildLocked(from: StartFrom, timeoutMs: number, stillLocked: () => Promise<void>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await this.store.setState('rebuilding');
    this.poke();
    await Promise.all([...this.workers.values()].map((w) => w.stop()));
    let leases: Stored<LeaseDocument>[];
    for (;;) {
      ({ leases } = await this.store.list());
      const now = Date.now();
      const held = leases.filter((l) => l.owner && l.expiresAt > now);
      if (held.length === 0) break;
      if (Date.now() > deadline) {
        throw new SubscriptionTimeoutError(
          `rebuild of ${this.name}: ${held.map((l) => l.owner).join(', ')} still hold leases after ${timeoutMs} ms; ` +
            'the group stays paused: call rebuild() again',
        );
      }
      await sleep(Math.min(this.settings.renewIntervalMs, 100));
    }
    await stillLocked();
    await this.runtime.rebuildHook?.(from);
    const start = toStoredStart(from);
    await stillLocked();
    // Before the leases are reset (no reader runs now): what was parked, and the dead letters of events read again.
    await this.store.purgeForRebuild(start);
    const missing = await this.missingRanges(leases);
    if (missing.length > 0) {
      await this.store.initialize(missing, start);
      // Reset what was there then too: another instance may have created a missing lease in the meantime.
      ({ leases } = await this.store.list());
    }
    for (const lease of leases) {
      await stillLocked();
      for (let current: Stored<LeaseDocument> | undefined = lease; current; ) {
        // Nothing stays parked: the rebuild reads every parked aggregate's events again, in order.
        const reset: LeaseDocument = { ...current, ...unclaimed(start) };
        delete reset.parked;
        if (await this.store.replace(reset, current._etag)) break;
        current = await this.store.read<LeaseDocument>(lease.id);
      }
    }
    await stillLocked();
    await this.store.setState('running');
    this.poke();
  }

  /** The group's lag, computed by the lag estimator (see `LagEstimator.lag`). */
  lag(): Promise<SubscriberLag> {
    return this.estimator.lag();
  }

  /** Resolves once every change committed before the call is checkpointed. */
  waitForCatchUp(timeoutMs: number): Promise<void> {
    return this.estimator.waitForCatchUp(timeoutMs);
  }

  /**
   * The parts of the container's feed ranges that no lease covers (see `uncovered`): a lease keeps its bounds
   * across a split, and leases together cover a merged range.
   */
  private async missingRanges(leases: ReadonlyArray<{ feedRange: Range }>): Promise<Range[]> {
    return uncovered((await this.ranges()) as unknown as readonly Range[], leases);
  }

  /** The container's feed ranges (read once). */
  private ranges(): Promise<readonly FeedRange[]> {
    const ranges = (this.feedRanges ??= this.events.getFeedRanges().catch((err: unknown) => {
      this.feedRanges = undefined;
      throw err;
    }));
    return ranges;
  }

  /** The SDK's feed range object for a lease's bounds (see `FeedRanges`). */
  private feedRangeOf(range: Range): Promise<FeedRange> {
    return this.feedRangeObjects.of(range);
  }
}
