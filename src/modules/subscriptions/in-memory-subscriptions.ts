import { Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { createHash } from 'node:crypto';
import type { FeedEvent } from './change-feed-reader.js';
import type { ParkedAggregate, SettledEvent } from './lease-store.js';
import { describe, SubscriberRuntime, type DeliveryControl, type PageOutcome, type Parking } from './subscriber-runtime.js';
import {
  DEFAULT_CATCH_UP_TIMEOUT_MS,
  DEFAULT_STOP_REASON,
  duplicateName,
  resolveSubscriber,
  type SubscriberRegistry,
} from './subscriptions-manager.js';
import { RebuildInProgressError, SubscriptionTimeoutError, UnknownDeadLetterError, UnknownSubscriberError } from './subscriptions.errors.js';
import type {
  DeadLetter,
  EventDeserializer,
  GroupState,
  RebuildOptions,
  StartFrom,
  StopGroupOptions,
  SubscriberLag,
  SubscriberStatus,
  Subscriptions,
  SubscriptionsModuleOptions,
} from './subscriptions.interfaces.js';
import type { ResolvedSubscriptionsOptions } from './subscriptions-options.js';
import { sleep } from './sleep.js';

/**
 * What the in-memory subscriptions read: a store that keeps its commits in order and says when it commits,
 * as `InMemoryEventStore` (bound by `EventStoreModule.inMemory()`) does.
 */
export interface CommitFeed {
  changesSince(position: number): { events: readonly FeedEvent[]; position: number };
  onCommit(listener: () => void): () => void;
}

/** True when `store` can feed the in-memory subscriptions. */
export function isCommitFeed(store: unknown): store is CommitFeed {
  const feed = store as Partial<CommitFeed> | null;
  return typeof feed?.changesSince === 'function' && typeof feed.onCommit === 'function';
}

/** Options of `SubscriptionsModule.inMemory`: those of `forRoot` that mean something without leases. */
export type InMemorySubscriptionsOptions = Pick<
  SubscriptionsModuleOptions,
  'instanceId' | 'maxItemCount' | 'retry' | 'onFailure' | 'autoStart' | 'shutdownTimeoutMs'
>;

/** The one "feed range" of the in-memory change feed, as `lag()` names it. */
const IN_MEMORY_RANGE = 'in-memory';

interface MemoryGroup {
  runtime: SubscriberRuntime;
  startFrom: StartFrom;
  /** Commits handled (the checkpoint); undefined until the group first starts. */
  position?: number;
  /** For a start at a time (epoch ms): events committed before it are passed over. */
  startAt?: number;
  state: GroupState;
  reason?: string;
  /** Who stopped it, while it is stopped. */
  stoppedBy?: 'failure' | 'operator';
  deadLetters: Map<string, DeadLetter>;
  /** When the rebuild running now began. */
  rebuildingSince?: Date;
  settled: SettledEvent[];
  /** Aggregates parked behind a dead letter (policy `dead-letter`), as a Cosmos DB lease lists them. */
  parked: Map<string, ParkedAggregate>;
  /** The events each parked aggregate holds back, in version order, as Cosmos DB's parked documents. */
  waiting: Map<string, FeedEvent[]>;
  /** The delivery loop while it runs; `again` asks it for one more round. */
  pump?: Promise<void>;
  again: boolean;
  /** Aborted by a rebuild: the page in hand is left unfinished, retry waits end. */
  interrupt: AbortController;
}

/**
 * The subscriptions over `InMemoryEventStore`'s commits, for unit tests: the same `@Subscriber` classes,
 * handlers, filters, retries, dead letters and policies as on Cosmos DB, in one process. One reader per
 * subscriber reads the commits in order, a page (`maxItemCount`) at a time, checkpointing after each page;
 * a page left unfinished (stop, rebuild) is read again, so delivery is at least once, each aggregate's
 * events in version order. Under policy `dead-letter` an aggregate is parked as on Cosmos DB: its later
 * events wait until its dead letter is replayed or discarded. Nothing is kept when the store goes.
 */
export class InMemorySubscriptions implements Subscriptions, SubscriberRegistry, OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('Subscriptions');
  private readonly groups = new Map<string, MemoryGroup>();
  private started = false;
  private stopRequest = new AbortController();
  private unsubscribe?: () => void;

  constructor(
    private readonly feed: CommitFeed,
    private readonly settings: ResolvedSubscriptionsOptions,
  ) {}

  register(instance: object, serializer?: EventDeserializer): void {
    const { subscriber, startFrom } = resolveSubscriber(instance, serializer, this.settings);
    if (this.groups.has(subscriber.name)) throw duplicateName(subscriber.name);
    const group: MemoryGroup = {
      runtime: new SubscriberRuntime(subscriber, this.logger),
      startFrom,
      state: 'running',
      deadLetters: new Map(),
      settled: [],
      parked: new Map(),
      waiting: new Map(),
      again: false,
      interrupt: new AbortController(),
    };
    this.groups.set(subscriber.name, group);
    if (this.started) this.begin(group);
  }

  onApplicationBootstrap(): void {
    if (this.settings.autoStart) void this.start();
  }

  async onModuleDestroy(): Promise<void> {
    await this.stop();
  }

  names(): string[] {
    return [...this.groups.keys()];
  }

  status(): SubscriberStatus[] {
    return [...this.groups.entries()].map(([name, { runtime, parked }]) => {
      const { handled, passedOver, deadLettered, lastError } = runtime.stats;
      return {
        name,
        ownedRanges: this.started ? [IN_MEMORY_RANGE] : [],
        handled,
        passedOver,
        deadLettered,
        parkedAggregates: [...parked.keys()],
        ...(lastError === undefined ? {} : { lastError }),
      };
    });
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.stopRequest = new AbortController();
    this.unsubscribe = this.feed.onCommit(() => {
      for (const group of this.groups.values()) this.poke(group);
    });
    for (const group of this.groups.values()) this.begin(group);
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.stopRequest.abort();
    await this.settle([...this.groups.values()]);
  }

  async lag(name?: string): Promise<SubscriberLag[]> {
    const groups = name === undefined ? [...this.groups.entries()] : [[name, this.group(name)] as const];
    const { events, position: end } = this.feed.changesSince(0);
    const now = Date.now();
    return groups.map(([groupName, group]) => {
      const from = group.position ?? 0;
      const pending = events.slice(from).filter((e) => group.startAt === undefined || e.committedAt.getTime() >= group.startAt);
      const oldest = pending[0]?.committedAt;
      const lag: SubscriberLag = {
        name: groupName,
        state: group.position === undefined ? 'not-started' : group.state,
        estimatedPending: group.position === undefined ? end : pending.length,
        behindMs: oldest ? Math.max(0, now - oldest.getTime()) : 0,
        parkedAggregates: [...group.parked.keys()],
        ranges: [
          {
            range: IN_MEMORY_RANGE,
            ...(this.started ? { owner: this.settings.instanceId } : {}),
            estimatedPending: pending.length,
            ...(oldest ? { oldestPendingAt: oldest } : {}),
          },
        ],
      };
      if (group.state === 'stopped' && group.reason) lag.reason = group.reason;
      if (group.state === 'stopped' && group.position !== undefined) lag.stoppedBy = group.stoppedBy ?? 'failure';
      return lag;
    });
  }

  async waitForCatchUp(name: string, options: { timeoutMs?: number } = {}): Promise<void> {
    const group = this.group(name);
    const timeoutMs = options.timeoutMs ?? DEFAULT_CATCH_UP_TIMEOUT_MS;
    const target = this.feed.changesSince(0).position;
    const deadline = Date.now() + timeoutMs;
    while (group.position === undefined || group.position < target) {
      if (Date.now() > deadline) {
        const why = !this.started
          ? 'the subscriptions are not started (init() the application, or call start())'
          : `state ${group.state}${group.reason ? `: ${group.reason}` : ''}`;
        throw new SubscriptionTimeoutError(
          `${name} did not catch up within ${timeoutMs} ms (${why}, ${target - (group.position ?? 0)} commit(s) pending)`,
        );
      }
      // The reader handles what is committed in the same turns of the event loop as the caller: a short
      // pause is enough, and keeps a test that waits quick.
      await sleep(1);
    }
  }

  async rebuild(name: string, options: RebuildOptions = {}): Promise<void> {
    const group = this.group(name);
    if (group.rebuildingSince !== undefined) throw new RebuildInProgressError(name, this.settings.instanceId, group.rebuildingSince);
    group.rebuildingSince = new Date();
    try {
      await this.rebuildOne(group, options);
    } finally {
      group.rebuildingSince = undefined;
    }
  }

  private async rebuildOne(group: MemoryGroup, options: RebuildOptions): Promise<void> {
    const from = options.from ?? 'beginning';
    group.state = 'rebuilding';
    group.interrupt.abort();
    await this.settle([group]);
    group.interrupt = new AbortController();
    await group.runtime.rebuildHook?.(from);
    group.settled = group.settled.filter((s) => s.discarded); // as on Cosmos DB: replayed ones are handled again
    // As on Cosmos DB: nothing stays parked (a parked aggregate's events are all read again, in order), and the
    // dead letters of the events read again go (a handler that fails again writes its letter again).
    group.parked.clear();
    group.waiting.clear();
    const readAgainFrom = from === 'beginning' ? 0 : from === 'now' ? Date.now() : from.getTime();
    for (const [id, letter] of group.deadLetters) {
      if (letter.committedAt && letter.committedAt.getTime() >= readAgainFrom) group.deadLetters.delete(id);
    }
    group.startFrom = from;
    this.place(group);
    group.state = 'running';
    group.reason = undefined;
    group.stoppedBy = undefined;
    this.poke(group);
  }

  async stopGroup(name: string, options: StopGroupOptions = {}): Promise<void> {
    const group = this.group(name);
    if (group.rebuildingSince !== undefined) throw new RebuildInProgressError(name, this.settings.instanceId, group.rebuildingSince);
    if (group.state === 'stopped') return;
    group.state = 'stopped';
    group.reason = options.reason ?? DEFAULT_STOP_REASON;
    group.stoppedBy = 'operator';
    this.logger.log(`${name}: group is stopped (${group.reason})`);
    // As a Cosmos DB reader asked to stop: retry waits end, the page in hand is finished and checkpointed.
    group.interrupt.abort();
    group.interrupt = new AbortController();
    await this.settle([group]);
  }

  async resume(name: string): Promise<void> {
    const group = this.group(name);
    if (group.state !== 'stopped') return;
    group.state = 'running';
    group.reason = undefined;
    group.stoppedBy = undefined;
    this.poke(group);
  }

  async deadLetters(name: string): Promise<DeadLetter[]> {
    return [...this.group(name).deadLetters.values()].sort((x, y) => x.failedAt.getTime() - y.failedAt.getTime());
  }

  async deadLetterPage(name: string, options: { maxItems?: number; continuation?: string } = {}): Promise<{ letters: DeadLetter[]; continuation?: string }> {
    const all = await this.deadLetters(name);
    const from = Number(options.continuation ?? 0);
    const to = from + (options.maxItems ?? 100);
    const letters = all.slice(from, to);
    return to < all.length ? { letters, continuation: String(to) } : { letters };
  }

  async replayDeadLetter(name: string, id: string): Promise<void> {
    const group = this.group(name);
    const letter = this.deadLetter(name, group, id);
    await group.runtime.replay(letter);
    this.settleLetter(group, letter, false);
    group.deadLetters.delete(id);
    this.poke(group);
  }

  async discardDeadLetter(name: string, id: string): Promise<void> {
    const group = this.group(name);
    const letter = this.deadLetter(name, group, id);
    this.settleLetter(group, letter, true);
    group.deadLetters.delete(id);
    this.poke(group);
  }

  private deadLetter(name: string, group: MemoryGroup, id: string): DeadLetter {
    const letter = group.deadLetters.get(id);
    if (!letter) throw new UnknownDeadLetterError(name, id);
    return letter;
  }

  /**
   * As on Cosmos DB: a letter that stopped the group is passed over by its handler once resumed; a parked
   * aggregate's letter, settled, lets the reader deliver the events that waited behind it.
   */
  private settleLetter(group: MemoryGroup, letter: DeadLetter, discarded: boolean): void {
    group.settled.push({ aggregateId: letter.aggregateId, version: letter.version, handler: letter.handler, discarded });
  }

  private group(name: string): MemoryGroup {
    const group = this.groups.get(name);
    if (!group) throw new UnknownSubscriberError(name);
    return group;
  }

  /** First start of a group: its checkpoint from `startFrom`; then it reads. */
  private begin(group: MemoryGroup): void {
    if (group.position === undefined) this.place(group);
    this.poke(group);
  }

  /** Puts the checkpoint where `startFrom` says: the first commit, or the first one at or after a time. */
  private place(group: MemoryGroup): void {
    const { startFrom } = group;
    group.position = startFrom === 'now' ? this.feed.changesSince(0).position : 0;
    // Commit times have second precision (as Cosmos DB's `_ts`): a start within a second takes that second.
    group.startAt = startFrom instanceof Date ? Math.floor(startFrom.getTime() / 1000) * 1000 : undefined;
  }

  /** Makes the group's reader run (again, if it is running). */
  private poke(group: MemoryGroup): void {
    group.again = true;
    if (group.pump || !this.started) return;
    const pump = this.read(group).finally(() => {
      if (group.pump === pump) group.pump = undefined;
      if (group.again && this.started && group.state === 'running') this.poke(group);
    });
    group.pump = pump;
  }

  private async read(group: MemoryGroup): Promise<void> {
    // Off the committing caller's stack: a save returns before its events are handled, as on Cosmos DB.
    await new Promise((resolve) => setImmediate(resolve));
    // Linked by hand and unlinked when this read ends (AbortSignal.any over the long-lived stop signal keeps
    // every read's signal alive on Node 20).
    const linked = new AbortController();
    const signal = linked.signal;
    const follow = () => linked.abort();
    const sources = [this.stopRequest.signal, group.interrupt.signal];
    for (const source of sources) {
      if (source.aborted) linked.abort();
      else source.addEventListener('abort', follow, { once: true });
    }
    try {
      await this.readLinked(group, signal);
    } finally {
      for (const source of sources) source.removeEventListener('abort', follow);
    }
  }

  private async readLinked(group: MemoryGroup, signal: AbortSignal): Promise<void> {
    const { runtime } = group;
    const name = runtime.subscriber.name;
    while (this.started && group.state === 'running' && !signal.aborted) {
      group.again = false;
      const control = this.deliveryControl(group, signal);
      let outcome: PageOutcome;
      try {
        outcome = group.parked.size > 0 ? await this.drainSettled(group, control) : 'handled';
        if (outcome !== 'handled') return this.ended(group, outcome);
        const from = group.position ?? 0;
        const { events } = this.feed.changesSince(from);
        const page = events.slice(0, runtime.subscriber.maxItemCount);
        if (page.length === 0) return;
        const due = group.startAt === undefined ? page : page.filter((e) => e.committedAt.getTime() >= group.startAt!);
        outcome = due.length === 0 ? 'handled' : await runtime.deliverPage(due, control);
        if (outcome !== 'handled') return this.ended(group, outcome);
        group.position = from + page.length;
      } catch (err) {
        runtime.stats.lastError = `delivering failed: ${describe(err)}`;
        this.logger.warn(`${name}: ${runtime.stats.lastError}`);
        return;
      }
    }
  }

  /** A delivery that did not end well: interrupted (read again later), or stopped on a failure (policy `stop`). */
  private ended(group: MemoryGroup, outcome: Exclude<PageOutcome, 'handled'>): void {
    if (outcome === 'interrupted') return;
    group.state = 'stopped';
    group.reason = group.runtime.stats.lastError ?? 'a handler failed';
    group.stoppedBy = 'failure';
    this.logger.log(`${group.runtime.subscriber.name}: group is stopped (${group.reason})`);
  }

  /**
   * As a Cosmos DB reader does before each page: delivers the waiting events of every parked aggregate whose
   * dead letter was settled (replayed or discarded), in version order, then lets the aggregate go. An event
   * that fails for good again parks it again behind its new letter, the events after it still waiting.
   */
  private async drainSettled(group: MemoryGroup, control: DeliveryControl): Promise<PageOutcome> {
    for (const parked of [...group.parked.values()]) {
      if (!control.mayContinue() || control.signal.aborted) return 'interrupted';
      if (!control.isSettled?.({ aggregateId: parked.aggregateId, version: parked.version, handler: parked.handler })) continue;
      const waiting = group.waiting.get(parked.aggregateId) ?? [];
      group.parked.delete(parked.aggregateId);
      group.waiting.delete(parked.aggregateId);
      let outcome: PageOutcome | undefined;
      try {
        outcome = await group.runtime.deliverPage(waiting, control);
      } finally {
        if (outcome !== 'handled') {
          // Not done: it stays parked where it was, every event it held still waiting (what was handled of
          // them may be handed out again, as on Cosmos DB).
          if (!group.parked.has(parked.aggregateId)) group.parked.set(parked.aggregateId, parked);
          group.waiting.set(parked.aggregateId, mergeByVersion(waiting, group.waiting.get(parked.aggregateId) ?? []));
        }
      }
      if (outcome !== 'handled') return outcome;
      const again = group.parked.get(parked.aggregateId);
      this.logger.log(
        `${group.runtime.subscriber.name}: ${parked.aggregateId} ${again ? `parked again at ${again.version}` : 'released'} ` +
          `after its dead letter was settled (${waiting.length} waiting event(s))`,
      );
    }
    return 'handled';
  }

  /** What a page's delivery may do: record dead letters, park aggregates, pass settled events over. */
  private deliveryControl(group: MemoryGroup, signal: AbortSignal): DeliveryControl {
    const name = group.runtime.subscriber.name;
    const parking: Parking = {
      isParked: (aggregateId) => group.parked.has(aggregateId),
      park: async (event) => {
        // Idempotent, as on Cosmos DB: a page read again holds each event back once.
        group.waiting.set(event.aggregateId, mergeByVersion(group.waiting.get(event.aggregateId) ?? [], [event]));
      },
      parkAggregate: (parked) => {
        group.parked.set(parked.aggregateId, parked);
      },
    };
    return {
      // An operator's stop lets the page in hand finish (and be checkpointed), as on Cosmos DB; a rebuild does not.
      mayContinue: () => this.started && group.state !== 'rebuilding',
      signal,
      deadLetter: async (letter) => {
        // As on Cosmos DB, the id depends on the event and handler only: a page read again writes the same letter.
        const id = createHash('sha256').update(JSON.stringify([letter.aggregateId, letter.version, letter.handler])).digest('hex').slice(0, 40);
        group.deadLetters.set(id, { ...letter, id, subscriber: name, instanceId: this.settings.instanceId });
        return id;
      },
      isSettled: (e) => group.settled.some((s) => s.aggregateId === e.aggregateId && s.version === e.version && s.handler === e.handler),
      parking,
    };
  }

  /** Waits until the groups' readers have finished the page in hand (or the shutdown timeout passed). */
  private async settle(groups: MemoryGroup[]): Promise<void> {
    const pumps = groups.map((g) => g.pump).filter((p): p is Promise<void> => p !== undefined);
    if (pumps.length === 0) return;
    const timeout = new AbortController();
    const finished = await Promise.race([
      Promise.all(pumps).then(() => true),
      sleep(this.settings.shutdownTimeoutMs, timeout.signal).then(() => false),
    ]);
    timeout.abort();
    if (!finished) this.logger.warn(`handlers still running after ${this.settings.shutdownTimeoutMs} ms; not waiting for them`);
  }
}

/** Two lists of one aggregate's events as one, in version order, each version once. */
function mergeByVersion(first: readonly FeedEvent[], second: readonly FeedEvent[]): FeedEvent[] {
  const byVersion = new Map<number, FeedEvent>();
  for (const event of [...first, ...second]) byVersion.set(event.version, event);
  return [...byVersion.values()].sort((x, y) => x.version - y.version);
}
