/*
 * An aggregate's idempotency keys live in its tip, which every command rewrites: the tip keeps the newest
 * MAX_IDEMPOTENCY_KEYS of them, so a busy aggregate's tip stays small. A key pushed out is forgotten (its
 * retry is a new command); the ones kept still answer their first outcome.
 */
import { Aggregate, AggregateRepository, AggregateRoot, Command, MAX_IDEMPOTENCY_KEYS, On } from '../../src/index.js';
import { InMemoryEventStore, InMemoryOpaqueStore } from '../../src/testing.js';

class Ticked {}

@Aggregate({ type: 'Clock' })
class Clock extends AggregateRoot {
  ticks = 0;
  @On(Ticked) onTicked(): void {
    this.ticks++;
  }
}

class Tick extends Command<Clock> {
  constructor(
    readonly aggregateId: string,
    readonly lifecycle: 'create' | 'mutate' = 'mutate',
  ) {
    super();
  }
  emit(): Ticked {
    return new Ticked();
  }
}

it(`keeps the newest ${MAX_IDEMPOTENCY_KEYS} keys of an aggregate in its tip`, async () => {
  const opaque = new InMemoryOpaqueStore();
  const events = new InMemoryEventStore({ opaqueStore: opaque });
  const clocks = new AggregateRepository(Clock, { events, aggregates: events, opaque });
  await clocks.apply(new Tick('c', 'create'));
  for (let i = 0; i <= MAX_IDEMPOTENCY_KEYS; i++) await clocks.apply(new Tick('c'), { idempotencyKey: `k-${i}` });
  const tip = await events.readTip(clocks.streamId('c'));
  expect(Object.keys((tip as { tip: { idempotency: object } }).tip.idempotency)).toHaveLength(MAX_IDEMPOTENCY_KEYS);
  const version = (await clocks.get('c')).version;
  // k-1 is still remembered: answered as first, nothing stored.
  expect(await clocks.apply(new Tick('c'), { idempotencyKey: 'k-1' })).toBe(3);
  expect((await clocks.get('c')).version).toBe(version);
  // k-0, the oldest, was pushed out: a new command.
  expect(await clocks.apply(new Tick('c'), { idempotencyKey: 'k-0' })).toBe(version + 1);
});
