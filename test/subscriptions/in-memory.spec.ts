/*
 * SubscriptionsModule.inMemory(): the same @Subscriber classes over InMemoryEventStore's commits, with the
 * delivery guarantees of the Cosmos DB subscriptions (at least once, each aggregate in order), retries, dead
 * letters and policies (parking as test/subscriptions/parking.e2e-spec.ts sees it on Cosmos DB), waitForCatchUp,
 * lag, rebuild and the admin actions (stopGroup and resume among them). No server.
 */
import { Inject, Module, type DynamicModule, type Provider } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import {
  EventStoreModule,
  OnStoredEvent,
  STORE,
  Subscriber,
  SUBSCRIPTIONS,
  SubscriptionsHealthIndicator,
  SubscriptionsModule,
  SubscriptionTimeoutError,
  RebuildInProgressError,
  UnknownSubscriberError,
  type Store,
  type SubscribedEvent,
  type Subscriptions,
} from '../../src/index.js';
import { DELIVERY_LOG, DeliveryLog, encode, eventually, expectAtLeastOnceInOrder, gate, writeConcurrently } from '../support/subscriptions.js';

const POISON = Symbol('POISON');

@Subscriber({ name: 'all', concurrency: 4, maxItemCount: 7 })
class All {
  constructor(
    @Inject(DELIVERY_LOG) private readonly log: DeliveryLog,
    @Inject(POISON) private readonly poison: Set<string>,
  ) {}

  @OnStoredEvent()
  async handle({ streamId: aggregateId, version, attempt }: SubscribedEvent): Promise<void> {
    // Each subclass is a subscriber of its own, named as its class.
    this.log.record({ instance: 'memory', subscriber: this.constructor.name.toLowerCase(), aggregateId, version, attempt });
    await new Promise((resolve) => setImmediate(resolve));
    if (this.poison.has(`${aggregateId}@${version}`)) throw new Error(`cannot handle ${aggregateId}@${version}`);
  }
}

@Subscriber({ name: 'strict', onFailure: 'stop' })
class Strict extends All {}

/** Holds its handler on `Held.gate` for `hold@1`, to stop a group while a page is in hand. */
@Subscriber({ name: 'held', maxItemCount: 10 })
class Held {
  static gate = gate();
  static rebuild = gate();
  static rebuilding = false;

  constructor(@Inject(DELIVERY_LOG) private readonly log: DeliveryLog) {}

  @OnStoredEvent()
  async handle({ streamId: aggregateId, version, attempt }: SubscribedEvent): Promise<void> {
    this.log.record({ instance: 'memory', subscriber: 'held', aggregateId, version, attempt });
    if (aggregateId === 'hold' && version === 1) await Held.gate.promise;
  }

  async onRebuild(): Promise<void> {
    Held.rebuilding = true;
    await Held.rebuild.promise;
  }
}

@Subscriber({ name: 'bare' })
class Bare {
  @OnStoredEvent()
  handle(): void {}
}

@Module({})
class Context {}
function context(providers: Provider[]): DynamicModule {
  return { module: Context, global: true, providers, exports: providers.map((p) => (p as { provide: symbol }).provide) };
}

let moduleRef: TestingModule | undefined;
afterEach(async () => {
  await moduleRef?.close();
  moduleRef = undefined;
});

async function boot(subscribers: Array<new (...args: never[]) => unknown>, poison = new Set<string>(), autoStart = true) {
  const log = new DeliveryLog();
  moduleRef = await Test.createTestingModule({
    imports: [
      EventStoreModule.inMemory(),
      SubscriptionsModule.inMemory({ retry: { attempts: 2, initialDelayMs: 1, maxDelayMs: 1 }, autoStart }),
      SubscriptionsModule.forFeature(subscribers),
      context([
        { provide: DELIVERY_LOG, useValue: log },
        { provide: POISON, useValue: poison },
      ]),
    ],
  }).compile();
  await moduleRef.init();
  return { log, store: moduleRef.get<Store>(STORE), subscriptions: moduleRef.get<Subscriptions>(SUBSCRIPTIONS) };
}

describe('SubscriptionsModule.inMemory()', () => {
  it('delivers every commit at least once, each aggregate in version order, and waitForCatchUp waits for them', async () => {
    const { log, store, subscriptions } = await boot([All]);
    const aggregates = Array.from({ length: 8 }, (_, i) => `agg-${i}`);
    await writeConcurrently(store, aggregates, 1, 30, { maxChunk: 5 });
    await subscriptions.waitForCatchUp('all', { timeoutMs: 5_000 });
    expectAtLeastOnceInOrder(log.of('all'), aggregates, 30);
    expect(log.of('all')).toHaveLength(8 * 30);
    expect((await subscriptions.lag('all'))[0]).toMatchObject({ name: 'all', state: 'running', estimatedPending: 0, behindMs: 0 });
    expect(subscriptions.status()[0]).toMatchObject({ name: 'all', handled: 240, deadLettered: 0 });
  });

  it('retries, dead-letters and moves on; under stop halts until the letter is replayed or discarded and resumed', async () => {
    const poison = new Set(['a@2', 'b@2']);
    const { log, store, subscriptions } = await boot([All, Strict], poison);
    await store.save('a', [1, 2, 3].map((version) => ({ version, data: encode({ version }) })));
    await subscriptions.waitForCatchUp('all', { timeoutMs: 5_000 });
    const [letter] = await subscriptions.deadLetters('all');
    expect(letter).toMatchObject({ subscriber: 'all', handler: 'All.handle', aggregateId: 'a', version: 2, attempts: 2, policy: 'dead-letter' });

    await expect(subscriptions.waitForCatchUp('strict', { timeoutMs: 200 })).rejects.toThrow(/state stopped: Strict.handle on a@2/);
    const health = await moduleRef!.get(SubscriptionsHealthIndicator).check();
    expect(health).toMatchObject({ status: 'down', message: 'stopped on a failure: strict' });
    await store.save('b', [{ version: 1, data: encode({}) }]);

    const [stop] = await subscriptions.deadLetters('strict');
    await subscriptions.discardDeadLetter('strict', stop.id);
    await subscriptions.resume('strict');
    await subscriptions.waitForCatchUp('strict', { timeoutMs: 5_000 });
    const strict = log.of('strict').filter((d) => d.aggregateId === 'a').map((d) => d.version);
    // The page is read again from its checkpoint: 1 again, 2 passed over (discarded), then 3.
    expect(strict).toEqual([1, 2, 2, 1, 3]);
    expect(log.of('strict').some((d) => d.aggregateId === 'b')).toBe(true);
    // A rebuild passes the discarded event over again: the handler still fails on it.
    await subscriptions.rebuild('strict');
    await subscriptions.waitForCatchUp('strict', { timeoutMs: 5_000 });
    expect(log.of('strict').filter((d) => d.aggregateId === 'a').map((d) => d.version)).toEqual([1, 2, 2, 1, 3, 1, 3]);

    poison.clear();
    await subscriptions.replayDeadLetter('all', letter.id);
    expect(await subscriptions.deadLetters('all')).toEqual([]);
    expect((await moduleRef!.get(SubscriptionsHealthIndicator).check()).status).toBe('up');
  });

  it('stopGroup: the page in hand is finished, nothing is delivered until resume, then what waited once, in order', async () => {
    Held.gate = gate();
    const { log, store, subscriptions } = await boot([Held]);
    const keys = () => log.of('held').map((d) => `${d.aggregateId}@${d.version}`);
    await store.save('hold', [1, 2, 3].map((version) => ({ version, data: encode({ version }) })));
    await eventually('the held handler runs', () => keys().includes('hold@1'));
    const stopping = subscriptions.stopGroup('held', { reason: 'maintenance' });
    expect((await subscriptions.lag('held'))[0]).toMatchObject({ state: 'stopped', reason: 'maintenance', stoppedBy: 'operator' });
    Held.gate.open();
    await stopping;
    // The page was finished and checkpointed.
    expect(keys()).toEqual(['hold@1', 'hold@2', 'hold@3']);
    expect((await subscriptions.lag('held'))[0].estimatedPending).toBe(0);
    const health = await moduleRef!.get(SubscriptionsHealthIndicator).check();
    expect(health).toMatchObject({ status: 'down', message: 'stopped by an operator: held' });

    const aggregates = ['w-1', 'w-2', 'w-3'];
    await writeConcurrently(store, aggregates, 1, 12, { maxChunk: 4 });
    await expect(subscriptions.waitForCatchUp('held', { timeoutMs: 100 })).rejects.toThrow(/state stopped: maintenance/);
    expect(keys()).toHaveLength(3);
    expect(subscriptions.status()[0].handled).toBe(3);
    await subscriptions.stopGroup('held', { reason: 'again' });
    expect((await subscriptions.lag('held'))[0].reason).toBe('maintenance');

    await subscriptions.resume('held');
    await subscriptions.waitForCatchUp('held', { timeoutMs: 5_000 });
    const after = log.of('held').slice(3);
    expectAtLeastOnceInOrder(after, aggregates, 12);
    expect(after).toHaveLength(aggregates.length * 12);
    const [lag] = await subscriptions.lag('held');
    expect(lag.state).toBe('running');
    expect(lag.stoppedBy).toBeUndefined();
    expect((await moduleRef!.get(SubscriptionsHealthIndicator).check()).status).toBe('up');
  });

  it('stopGroup refuses while a rebuild runs, and an unknown group; a failure stop says so', async () => {
    Held.gate = gate();
    Held.gate.open();
    Held.rebuild = gate();
    Held.rebuilding = false;
    const { store, subscriptions } = await boot([Held, Strict], new Set(['s@1']));
    await expect(subscriptions.stopGroup('no-such-group')).rejects.toBeInstanceOf(UnknownSubscriberError);
    const rebuilding = subscriptions.rebuild('held');
    await eventually('the rebuild hook runs', () => Held.rebuilding);
    await expect(subscriptions.stopGroup('held')).rejects.toBeInstanceOf(RebuildInProgressError);
    Held.rebuild.open();
    await rebuilding;
    await subscriptions.stopGroup('held');
    expect((await subscriptions.lag('held'))[0]).toMatchObject({ state: 'stopped', reason: 'stopped by an operator', stoppedBy: 'operator' });

    await store.save('s', [{ version: 1, data: encode({}) }]);
    await eventually('strict stops', async () => (await subscriptions.lag('strict'))[0].state === 'stopped');
    expect((await subscriptions.lag('strict'))[0].stoppedBy).toBe('failure');
    const health = await moduleRef!.get(SubscriptionsHealthIndicator).check();
    expect(health).toMatchObject({ status: 'down', message: 'stopped on a failure: strict; stopped by an operator: held' });
  });

  describe('parking (policy dead-letter), as on Cosmos DB', () => {
    @Subscriber({ name: 'parking' })
    class Parking extends All {}
    const versionsOf = (log: DeliveryLog, aggregateId: string) => log.of('parking').filter((d) => d.aggregateId === aggregateId).map((d) => d.version);
    const save = (store: Store, aggregateId: string, from: number, to: number) =>
      store.save(aggregateId, Array.from({ length: to - from + 1 }, (_, i) => ({ version: from + i, data: encode({ v: from + i }) })));

    it.each([
      ['replayed', 'replay'],
      ['discarded', 'discard'],
    ] as const)('parks an aggregate behind its dead letter while the others go on and releases it in order once %s', async (_label, how) => {
      const poison = new Set(['p@3']);
      const { log, store, subscriptions } = await boot([Parking], poison);
      await save(store, 'p', 1, 6);
      await save(store, 'q', 1, 3);
      await subscriptions.waitForCatchUp('parking', { timeoutMs: 5_000 });
      // Retried once (attempts: 2), then dead-lettered: 4-6 wait.
      expect(versionsOf(log, 'p')).toEqual([1, 2, 3, 3]);
      expect(versionsOf(log, 'q')).toEqual([1, 2, 3]);
      expect(subscriptions.status()[0].parkedAggregates).toEqual(['p']);
      const [lag] = await subscriptions.lag('parking');
      // The waiting events are not pending: the checkpoint passed them.
      expect(lag).toMatchObject({ state: 'running', estimatedPending: 0, parkedAggregates: ['p'] });

      // Other aggregates go on; p's new events wait too.
      await save(store, 'p', 7, 8);
      await save(store, 'q', 4, 4);
      await subscriptions.waitForCatchUp('parking', { timeoutMs: 5_000 });
      expect(versionsOf(log, 'p')).toEqual([1, 2, 3, 3]);
      expect(versionsOf(log, 'q')).toEqual([1, 2, 3, 4]);
      const page = await subscriptions.deadLetterPage('parking', { maxItems: 1 });
      expect(page.letters.map((l) => [l.aggregateId, l.version, l.policy])).toEqual([['p', 3, 'dead-letter']]);

      poison.clear();
      const [letter] = await subscriptions.deadLetters('parking');
      if (how === 'replay') await subscriptions.replayDeadLetter('parking', letter.id);
      else await subscriptions.discardDeadLetter('parking', letter.id);
      await eventually('p is released', () => versionsOf(log, 'p').at(-1) === 8, 5_000);
      const released = how === 'replay' ? [1, 2, 3, 3, 3, 4, 5, 6, 7, 8] : [1, 2, 3, 3, 4, 5, 6, 7, 8];
      expect(versionsOf(log, 'p')).toEqual(released);
      expect(subscriptions.status()[0].parkedAggregates).toEqual([]);
      expect((await subscriptions.lag('parking'))[0].parkedAggregates).toEqual([]);
      expect(await subscriptions.deadLetters('parking')).toEqual([]);

      // Later events of p flow again.
      await save(store, 'p', 9, 9);
      await subscriptions.waitForCatchUp('parking', { timeoutMs: 5_000 });
      expect(versionsOf(log, 'p')).toEqual([...released, 9]);
    });

    it('a released aggregate that fails again is parked again at that event, the later ones still waiting', async () => {
      const poison = new Set(['p@2', 'p@4']);
      const { log, store, subscriptions } = await boot([Parking], poison);
      await save(store, 'p', 1, 5);
      await subscriptions.waitForCatchUp('parking', { timeoutMs: 5_000 });
      expect(versionsOf(log, 'p')).toEqual([1, 2, 2]);
      poison.delete('p@2');
      const [first] = await subscriptions.deadLetters('parking');
      await subscriptions.replayDeadLetter('parking', first.id);
      await eventually('p is parked again at 4', async () => (await subscriptions.deadLetters('parking')).some((l) => l.version === 4), 5_000);
      expect(versionsOf(log, 'p')).toEqual([1, 2, 2, 2, 3, 4, 4]);
      expect(subscriptions.status()[0].parkedAggregates).toEqual(['p']);

      poison.clear();
      const [second] = await subscriptions.deadLetters('parking');
      await subscriptions.discardDeadLetter('parking', second.id);
      await eventually('p is released', () => versionsOf(log, 'p').at(-1) === 5, 5_000);
      expect(versionsOf(log, 'p')).toEqual([1, 2, 2, 2, 3, 4, 4, 5]);
      expect(subscriptions.status()[0].parkedAggregates).toEqual([]);
    });

    it('a rebuild unparks everything and reads a parked aggregate again in order', async () => {
      const poison = new Set(['p@3']);
      const { log, store, subscriptions } = await boot([Parking], poison);
      await save(store, 'p', 1, 6);
      await subscriptions.waitForCatchUp('parking', { timeoutMs: 5_000 });
      expect(versionsOf(log, 'p')).toEqual([1, 2, 3, 3]);
      expect(subscriptions.status()[0].parkedAggregates).toEqual(['p']);

      // The rebuild reads p from its start again: 1 and 2 are handled, 3 fails again (a fresh letter), 4-6 wait.
      const before = versionsOf(log, 'p').length;
      await subscriptions.rebuild('parking');
      await subscriptions.waitForCatchUp('parking', { timeoutMs: 5_000 });
      expect(versionsOf(log, 'p').slice(before)).toEqual([1, 2, 3, 3]);
      const letters = await subscriptions.deadLetters('parking');
      expect(letters.map((l) => [l.aggregateId, l.version])).toEqual([['p', 3]]);

      poison.clear();
      await subscriptions.replayDeadLetter('parking', letters[0].id);
      await eventually('p is released', () => versionsOf(log, 'p').at(-1) === 6, 5_000);
      expect(versionsOf(log, 'p').slice(before)).toEqual([1, 2, 3, 3, 3, 4, 5, 6]);
      expect((await subscriptions.lag('parking'))[0].parkedAggregates).toEqual([]);
    });
  });

  it('says why it does not catch up when the subscriptions were not started', async () => {
    const { store, subscriptions } = await boot([All], new Set(), false);
    await store.save('x', [{ version: 1, data: encode({}) }]);
    const waiting = subscriptions.waitForCatchUp('all', { timeoutMs: 50 });
    await expect(waiting).rejects.toBeInstanceOf(SubscriptionTimeoutError);
    await expect(subscriptions.waitForCatchUp('all', { timeoutMs: 50 })).rejects.toThrow(/not started/);
    await subscriptions.start();
    await subscriptions.waitForCatchUp('all', { timeoutMs: 1_000 });
  });

  it('starts a group at "now": what was committed before its first start is not delivered', async () => {
    @Subscriber({ name: 'late', startFrom: 'now' })
    class Late extends All {}
    const { log, store, subscriptions } = await boot([Late], new Set(), false);
    await store.save('early', [{ version: 1, data: encode({}) }]);
    await subscriptions.start();
    await store.save('later', [{ version: 1, data: encode({}) }]);
    await subscriptions.waitForCatchUp('late', { timeoutMs: 1_000 });
    expect(log.deliveries.map((d) => d.aggregateId)).toEqual(['later']);
  });

  it('needs the in-memory store, and says so', async () => {
    const compiling = Test.createTestingModule({
      imports: [
        context([{ provide: STORE, useValue: { save: async () => undefined } }]),
        SubscriptionsModule.inMemory(),
        SubscriptionsModule.forFeature([Bare]),
      ],
    }).compile();
    await expect(compiling).rejects.toThrow(/SubscriptionsModule.inMemory\(\) delivers the events of the in-memory event store: import EventStoreModule.inMemory\(\)/);
  });

  it('a feature module without any subscriptions module names the missing import', async () => {
    await expect(Test.createTestingModule({ imports: [EventStoreModule.inMemory(), SubscriptionsModule.forFeature([Bare])] }).compile()).rejects.toThrow(
      /needs the subscriptions: import SubscriptionsModule.forRoot\(\)/,
    );
  });
});
