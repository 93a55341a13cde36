/*
 * Issue 20's guard, as a property: random commands, extreme numbers among them (NaN, infinities, bigints,
 * sums that overflow to Infinity, bodies over 2 MB), are either accepted or refused with a ValidationError
 * naming the field, and every accepted command leaves an aggregate that loads, through the tip and from its
 * events alike, with the state the accepted commands alone give. Refused commands store nothing. On the
 * in-memory stores and on the Cosmos DB stores over the embedded server.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import {
  Aggregate,
  AggregateRoot,
  Command,
  CosmosEventStore,
  CosmosOpaqueStore,
  On,
  AggregateRepository,
  ValidationError,
  type RepositoryStores,
} from '../../src/index.js';
import { InMemoryEventStore, InMemoryOpaqueStore } from '../../src/testing.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import { runs } from './support.js';
import { create } from '@bufbuild/protobuf';
import { ProtosourceRepository } from '../../src/protosource.js';
import { orderCommands, orderDefinition } from '../../example/src/modules/protosource-orders/order.domain.js';
import { AddItemSchema, CreateSchema } from '../../example/src/modules/protosource-orders/gen/example-order/order_pb.js';

class Opened {}
class Posted {
  constructor(
    readonly amount: unknown,
    readonly note: string,
  ) {}
}

@Aggregate({ type: 'GuardedLedger' })
class Ledger extends AggregateRoot {
  balance = 0;
  entries: unknown[] = [];
  notes = '';

  @On(Opened)
  onOpened(): void {}

  @On(Posted)
  onPosted(event: Posted): void {
    this.balance += Number(event.amount);
    this.entries.push(event.amount);
    this.notes = event.note;
  }
}

class Open extends Command<Ledger> {
  readonly lifecycle = 'create';
  constructor(readonly aggregateId: string) {
    super();
  }
  emit(): Opened {
    return new Opened();
  }
}

class Post extends Command<Ledger> {
  readonly lifecycle = 'mutate';
  constructor(
    readonly aggregateId: string,
    readonly amount: unknown,
    readonly note: string,
  ) {
    super();
  }
  emit(): Posted {
    return new Posted(this.amount, this.note);
  }
}

const extreme = fc.oneof(
  fc.integer(),
  fc.double(), // NaN, ±Infinity, -0 and subnormals included
  fc.constantFrom(Number.MAX_VALUE, -Number.MAX_VALUE, Number.MAX_SAFE_INTEGER, 2 ** 63, 1e308),
  fc.bigInt(),
);
const BIG_NOTE = 'x'.repeat(2 * 1024 * 1024 + 10);
const note = fc.oneof({ weight: 9, arbitrary: fc.string({ maxLength: 20 }) }, { weight: 1, arbitrary: fc.constant(BIG_NOTE) });
const commands = fc.array(fc.record({ amount: extreme, note }), { minLength: 1, maxLength: 8 });

/** What the accepted commands alone give, folded as the aggregate folds their events (stored as JSON: -0 is 0). */
function model(accepted: ReadonlyArray<{ amount: unknown; note: string }>) {
  const ledger = new Ledger();
  for (const { amount, note: n } of accepted) ledger.onPosted(new Posted(JSON.parse(JSON.stringify(amount)) as unknown, n));
  return { balance: ledger.balance, entries: ledger.entries, notes: ledger.notes };
}

async function check(stores: RepositoryStores, numRuns: number): Promise<void> {
  const quiet = { warn: () => undefined };
  await fc.assert(
    fc.asyncProperty(commands, async (cmds) => {
      const ledgers = new AggregateRepository(Ledger, stores, { logger: quiet });
      const id = `l-${randomUUID()}`;
      await ledgers.apply(new Open(id));
      const accepted: Array<{ amount: unknown; note: string }> = [];
      for (const cmd of cmds) {
        try {
          const version = await ledgers.apply(new Post(id, cmd.amount, cmd.note));
          accepted.push(cmd);
          expect(version).toBe(accepted.length + 1);
        } catch (err) {
          // Refused as a validation error that names what cannot be stored.
          expect(err).toBeInstanceOf(ValidationError);
          expect((err as ValidationError).field).toMatch(/^(events\[0\]|state|materialized)/);
        }
        // Whatever happened, the aggregate loads: through its tip, from its events, and as materialized.
        const expected = { ...model(accepted), version: accepted.length + 1 };
        for (const ledger of [
          await ledgers.load(id),
          await ledgers.get(id),
          await new AggregateRepository(Ledger, stores, { logger: quiet, tip: false }).load(id),
        ]) {
          expect({ balance: ledger.balance, entries: ledger.entries, notes: ledger.notes, version: ledger.version }).toEqual(expected);
          expect(Number.isFinite(ledger.balance)).toBe(true);
        }
        expect((await ledgers.history(id)).length).toBe(accepted.length + 1);
      }
    }),
    { numRuns },
  );
}

describe('no accepted command leaves an aggregate that does not load (issue 20)', () => {
  it('on the in-memory stores', async () => {
    const opaque = new InMemoryOpaqueStore();
    const events = new InMemoryEventStore({ opaqueStore: opaque });
    await check({ events, aggregates: events, opaque }, runs(60));
  }, 120_000);

  describe('on the Cosmos DB stores over the embedded server', () => {
    let fixture: CosmosFixture;
    beforeAll(async () => {
      fixture = await startCosmosFixture();
    });
    afterAll(() => fixture?.close());

    it('holds', async () => {
      const opaque = new CosmosOpaqueStore(fixture.aggregates);
      const events = new CosmosEventStore(fixture.events, { opaqueStore: opaque });
      await check({ events, aggregates: events, opaque }, runs(15));
    }, 180_000);
  });
});

describe('protosource mode: no accepted command leaves an order that does not load (issue 20)', () => {
  it('random items with extreme prices and quantities, on the in-memory stores', async () => {
    const events = new InMemoryEventStore();
    const opaque = new InMemoryOpaqueStore();
    const orders = new ProtosourceRepository(orderDefinition, { events, opaque });
    const INT64_MAX = 2n ** 63n - 1n;
    const price = fc.oneof(fc.bigInt({ min: 0n, max: INT64_MAX }), fc.constantFrom(0n, 1n, INT64_MAX, INT64_MAX / 2n + 1n, 5_000_000_000_000_000_000n));
    const items = fc.array(fc.record({ price, quantity: fc.integer({ min: 0, max: 2 ** 31 - 1 }) }), { minLength: 1, maxLength: 6 });
    await fc.assert(
      fc.asyncProperty(items, async (lines) => {
        const id = `po-${randomUUID()}`;
        await orders.apply(orderCommands.create(create(CreateSchema, { id, customerId: 'c' }), 'a'));
        let version = 1;
        for (const [i, line] of lines.entries()) {
          const item = { itemId: `i-${i}`, priceCents: line.price, quantity: line.quantity };
          try {
            version = await orders.apply(orderCommands.addItem(create(AddItemSchema, { id, item }), 'a'));
          } catch (err) {
            // Refused as a validation error naming what cannot be encoded; nothing stored.
            expect(err).toBeInstanceOf(ValidationError);
            expect((err as ValidationError).field).toMatch(/^(state|projections\[\d+\]|events\[\d+\])/);
          }
          // Whatever happened, the order loads, reads and takes commands.
          expect((await orders.load(id)).version).toBe(version);
          expect(Number((await orders.get(id)).version)).toBe(version);
          expect((await orders.history(id)).length).toBeGreaterThanOrEqual(version);
        }
      }),
      { numRuns: runs(40) },
    );
  }, 120_000);
});
