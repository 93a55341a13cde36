/*
 * Failing handlers: retried with backoff, then recorded as a dead letter in the leases container and either
 * skipped (policy dead-letter) or the consumer group halted on every instance at that event until resume()
 * (policy stop). Nothing is skipped without a record.
 */
import { Inject } from '@nestjs/common';
import {
  CosmosEventStore,
  OnStoredEvent,
  Subscriber,
  SubscriptionsHealthIndicator,
  UnknownDeadLetterError,
  UnknownSubscriberError,
  type SubscribedEvent,
} from '../../src/index.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import { DELIVERY_LOG, DeliveryLog, eventually, INSTANCE_NAME, startInstance, type Instance } from '../support/subscriptions.js';

/** Events (`aggregate@version`) the handlers fail on, shared by every instance of a test. */
const POISON = Symbol('POISON');
type Poison = Set<string>;

abstract class Fragile {
  protected abstract readonly name: string;

  constructor(
    @Inject(DELIVERY_LOG) private readonly log: DeliveryLog,
    @Inject(INSTANCE_NAME) private readonly instance: string,
    @Inject(POISON) private readonly poison: Poison,
  ) {}

  @OnStoredEvent()
  handle({ streamId: aggregateId, version, attempt }: SubscribedEvent): void {
    this.log.record({ instance: this.instance, subscriber: this.name, aggregateId, version, attempt });
    if (this.poison.has(`${aggregateId}@${version}`)) throw new Error(`cannot handle ${aggregateId}@${version}`);
  }
}

@Subscriber({ name: 'tolerant' })
class Tolerant extends Fragile {
  protected readonly name = 'tolerant';
}

@Subscriber({ name: 'strict', onFailure: 'stop', retry: { attempts: 2, initialDelayMs: 1 } })
class Strict extends Fragile {
  protected readonly name = 'strict';
}

const strictDecoder = {
  deserialize(bytes: Uint8Array): unknown {
    return JSON.parse(new TextDecoder().decode(bytes));
  },
};

@Subscriber({ name: 'decoding', serializer: strictDecoder })
class Decoding {
  constructor(@Inject(DELIVERY_LOG) private readonly log: DeliveryLog) {}

  @OnStoredEvent()
  handle({ streamId: aggregateId, version }: SubscribedEvent): void {
    this.log.record({ instance: 'A', subscriber: 'decoding', aggregateId, version, attempt: 1 });
  }
}

const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const versionsOf = (log: DeliveryLog, subscriber: string, aggregateId: string) =>
  log.of(subscriber).filter((d) => d.aggregateId === aggregateId).map((d) => d.version);

let fixture: CosmosFixture;
let store: CosmosEventStore;
const instances: Instance[] = [];
let leasesContainerId: string;
let tests = 0;

beforeAll(async () => {
  fixture = await startCosmosFixture({ partitionKeyRanges: 2 });
  store = new CosmosEventStore(fixture.events);
});

beforeEach(() => {
  leasesContainerId = `leases-${++tests}`;
});

afterEach(async () => {
  await Promise.all(instances.splice(0).map((i) => i.close()));
});

afterAll(async () => {
  await fixture?.close();
});

async function instance(name: string, subscribers: Array<new (...args: never[]) => unknown>, log: DeliveryLog, poison: Poison) {
  const started = await startInstance({
    name,
    endpoint: fixture.cosmos.endpoint,
    key: fixture.cosmos.key,
    databaseId: fixture.events.database.id,
    subscribers,
    log,
    options: { leasesContainerId },
    providers: [{ provide: POISON, useValue: poison }],
  });
  instances.push(started);
  return started;
}

describe('subscriptions: failing handlers', () => {
  it('retries a failing handler, records a dead letter after the last attempt, parks its aggregate and moves on with the others', async () => {
    const log = new DeliveryLog();
    const poison: Poison = new Set(['t-1@2']);
    await store.save('t-1', [1, 2, 3, 4].map((version) => ({ version, data: encode({ version }) })));
    await store.save('t-2', [{ version: 1, data: encode({}) }]);
    const a = await instance('A', [Tolerant], log, poison);
    await a.subscriptions.waitForCatchUp('tolerant', { timeoutMs: 10_000 });

    const attempts = log.of('tolerant').filter((d) => d.aggregateId === 't-1' && d.version === 2).map((d) => d.attempt);
    expect(attempts).toEqual([1, 2, 3]);
    // t-1 is parked behind its dead letter: 3 and 4 wait.
    expect(versionsOf(log, 'tolerant', 't-1')).toEqual([1, 2, 2, 2]);
    expect(versionsOf(log, 'tolerant', 't-2')).toEqual([1]);

    const letters = await a.subscriptions.deadLetters('tolerant');
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({
      subscriber: 'tolerant',
      handler: 'Tolerant.handle',
      aggregateId: 't-1',
      version: 2,
      attempts: 3,
      instanceId: 'A',
      policy: 'dead-letter',
      error: { name: 'Error', message: 'cannot handle t-1@2' },
    });
    expect(JSON.parse(new TextDecoder().decode(letters[0].data))).toEqual({ version: 2 });
    expect(a.subscriptions.status()[0]).toMatchObject({ deadLettered: 1, handled: 3, parkedAggregates: ['t-1'] });
    expect(a.logger.text).toContain('cannot handle t-1@2');
    const [lag] = await a.subscriptions.lag('tolerant');
    expect(lag).toMatchObject({ state: 'running', estimatedPending: 0, parkedAggregates: ['t-1'] });
  });

  it('dead-letters an event the serializer cannot decode, without calling the handler', async () => {
    const log = new DeliveryLog();
    await store.save('d-1', [
      { version: 1, data: encode({ ok: true }) },
      { version: 2, data: new TextEncoder().encode('not json') },
      { version: 3, data: encode({ ok: true }) },
    ]);
    const a = await instance('A', [Decoding], log, new Set());
    await a.subscriptions.waitForCatchUp('decoding', { timeoutMs: 10_000 });
    // d-1 is parked behind the letter: 3 waits.
    expect(versionsOf(log, 'decoding', 'd-1')).toEqual([1]);
    expect(a.subscriptions.status()[0].parkedAggregates).toEqual(['d-1']);
    const letters = await a.subscriptions.deadLetters('decoding');
    expect(letters.map((l) => [l.aggregateId, l.version, l.handler, l.attempts])).toEqual([['d-1', 2, '(deserialize)', 1]]);
  });

  it('halts the group on every instance at the failing event under policy stop, and resume retries it', async () => {
    const log = new DeliveryLog();
    const poison: Poison = new Set(['s-1@2']);
    const a = await instance('A', [Strict], log, poison);
    const b = await instance('B', [Strict], log, poison);
    await eventually('both instances read', () =>
      a.subscriptions.status()[0].ownedRanges.length === 1 && b.subscriptions.status()[0].ownedRanges.length === 1,
    );
    await store.save('s-1', [1, 2, 3].map((version) => ({ version, data: encode({ version }) })));
    await eventually('the group is stopped', async () => (await a.subscriptions.lag('strict'))[0].state === 'stopped');

    const [lag] = await b.subscriptions.lag('strict');
    expect(lag.reason).toContain('cannot handle s-1@2');
    expect(lag.estimatedPending).toBeGreaterThan(0);
    expect(versionsOf(log, 'strict', 's-1')).toEqual([1, 2, 2]);
    const letters = await a.subscriptions.deadLetters('strict');
    expect(letters.map((l) => [l.aggregateId, l.version, l.policy])).toEqual([['s-1', 2, 'stop']]);
    const health = await b.module.get(SubscriptionsHealthIndicator).check();
    expect(health).toMatchObject({ status: 'down', message: 'stopped on a failure: strict' });

    // Both instances let go: events written now, in any range, wait.
    await eventually('no instance holds a range', () =>
      a.subscriptions.status()[0].ownedRanges.length === 0 && b.subscriptions.status()[0].ownedRanges.length === 0,
    );
    for (let i = 0; i < 6; i++) await store.save(`s-other-${i}`, [{ version: 1, data: encode({}) }]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(log.of('strict').filter((d) => d.aggregateId.startsWith('s-other'))).toEqual([]);

    poison.clear();
    await b.subscriptions.resume('strict');
    await a.subscriptions.waitForCatchUp('strict', { timeoutMs: 10_000 });
    // The checkpoint stayed before the page that failed (one batch: 1, 2, 3): it is read again from its start.
    expect(versionsOf(log, 'strict', 's-1')).toEqual([1, 2, 2, 1, 2, 3]);
    expect(log.of('strict').filter((d) => d.aggregateId.startsWith('s-other'))).toHaveLength(6);
    expect((await a.module.get(SubscriptionsHealthIndicator).check()).status).toBe('up');
  });

  it('a stopped group: its dead letter discarded, a resume passes that event over and the group reads on', async () => {
    const log = new DeliveryLog();
    const poison: Poison = new Set(['p-1@2']);
    const a = await instance('A', [Strict], log, poison);
    await store.save('p-1', [1, 2, 3].map((version) => ({ version, data: encode({ version }) })));
    await eventually('the group is stopped', async () => (await a.subscriptions.lag('strict'))[0].state === 'stopped');
    const [letter] = await a.subscriptions.deadLetters('strict');
    expect(letter).toMatchObject({ aggregateId: 'p-1', version: 2, policy: 'stop', id: expect.stringMatching(/^[0-9a-f]{40}$/) });

    // The handler still fails on it: discarding is the way past it.
    await a.subscriptions.discardDeadLetter('strict', letter.id);
    expect(await a.subscriptions.deadLetters('strict')).toEqual([]);
    await expect(a.subscriptions.discardDeadLetter('strict', letter.id)).rejects.toBeInstanceOf(UnknownDeadLetterError);
    await a.subscriptions.resume('strict');
    await a.subscriptions.waitForCatchUp('strict', { timeoutMs: 10_000 });
    // Read again from the checkpoint before the page: 1 and 3 again, 2 no more.
    expect(versionsOf(log, 'strict', 'p-1')).toEqual([1, 2, 2, 1, 3]);
    expect((await a.subscriptions.lag('strict'))[0].state).toBe('running');
    expect(await a.subscriptions.deadLetters('strict')).toEqual([]);

    // A rebuild reads everything again and passes the discarded event over too (the handler still fails on it).
    await a.subscriptions.rebuild('strict');
    await a.subscriptions.waitForCatchUp('strict', { timeoutMs: 10_000 });
    expect(versionsOf(log, 'strict', 'p-1')).toEqual([1, 2, 2, 1, 3, 1, 3]);
    expect((await a.subscriptions.lag('strict'))[0].state).toBe('running');
  });

  it('a replayed dead letter is handed to its handler once more and removed; a replay that fails again keeps it', async () => {
    const log = new DeliveryLog();
    const poison: Poison = new Set(['r-1@2']);
    const a = await instance('A', [Strict], log, poison);
    await store.save('r-1', [1, 2, 3].map((version) => ({ version, data: encode({ version }) })));
    await eventually('the group is stopped', async () => (await a.subscriptions.lag('strict'))[0].state === 'stopped');
    const [letter] = await a.subscriptions.deadLetters('strict');

    await expect(a.subscriptions.replayDeadLetter('strict', letter.id)).rejects.toThrow(
      expect.objectContaining({ name: 'DeadLetterReplayError', message: expect.stringContaining('cannot handle r-1@2') }) as Error,
    );
    expect((await a.subscriptions.deadLetters('strict')).map((l) => l.id)).toEqual([letter.id]);

    poison.clear(); // the handler is fixed
    await a.subscriptions.replayDeadLetter('strict', letter.id);
    expect(await a.subscriptions.deadLetters('strict')).toEqual([]);
    const replays = log.of('strict').filter((d) => d.aggregateId === 'r-1' && d.version === 2);
    expect(replays.map((d) => d.attempt)).toEqual([1, 2, 3, 3]);

    // Resumed, the group does not hand the replayed event to the handler a fourth time.
    await a.subscriptions.resume('strict');
    await a.subscriptions.waitForCatchUp('strict', { timeoutMs: 10_000 });
    expect(versionsOf(log, 'strict', 'r-1')).toEqual([1, 2, 2, 2, 2, 1, 3]);
    // A rebuild starts the read model afresh: the replayed event is handled again.
    await a.subscriptions.rebuild('strict');
    await a.subscriptions.waitForCatchUp('strict', { timeoutMs: 10_000 });
    expect(versionsOf(log, 'strict', 'r-1')).toEqual([1, 2, 2, 2, 2, 1, 3, 1, 2, 3]);
    await expect(a.subscriptions.replayDeadLetter('nobody', letter.id)).rejects.toBeInstanceOf(UnknownSubscriberError);
  });
});
