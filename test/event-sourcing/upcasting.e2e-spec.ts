/*
 * Issue 16 part 4: explicit event type names and schema versions, upcasters applied on read (load, history)
 * with the stored bytes untouched, old type names (aliases) read as the current class, a version with no
 * upcaster path refused loudly, and snapshots of another state schema version passed over. On the in-memory
 * stores and on the embedded server.
 */
import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import {
  Aggregate,
  AggregateRoot,
  Command,
  DomainEvent,
  EventSchemaError,
  JsonEventSerializer,
  On,
  AggregateRepository,
  SNAPSHOT_EVENT_TYPE,
  UnreadableStreamError,
  type AggregateClass,
} from '../../src/index.js';
import { rejectionOf } from '../support/rejection.js';
import { storeSuites, type StoresUnderTest } from './story-stores.js';

@DomainEvent('WalletOpened')
class WalletOpened {
  constructor(readonly owner: string) {}
}

/**
 * v1 was stored as `MoneyDeposited { amount: 12.5 }`; v2 as `FundsDeposited { amountCents: 1250 }`; v3 adds the
 * currency, which was always euros before.
 */
@DomainEvent('FundsDeposited', {
  version: 3,
  aliases: ['MoneyDeposited'],
  upcasters: {
    1: ({ amount, ...rest }) => ({ ...rest, amountCents: Math.round(Number(amount) * 100) }),
    2: ({ amountCents, ...rest }) => ({ ...rest, cents: amountCents, currency: 'EUR' }),
  },
})
class FundsDeposited {
  constructor(
    readonly cents: number,
    readonly currency: string,
  ) {}
}

/** Version 3, with an upcaster from 2 only: a v1 event has no path. */
@DomainEvent('FundsWithdrawn', { version: 3, upcasters: { 2: (p) => ({ ...p, reason: 'unknown' }) } })
class FundsWithdrawn {
  constructor(
    readonly cents: number,
    readonly reason: string,
  ) {}
}

@Aggregate({ type: 'Wallet' })
class Wallet extends AggregateRoot {
  owner = '';
  balanceCents = 0;
  @On(WalletOpened) onOpened(e: WalletOpened): void {
    this.owner = e.owner;
  }
  @On(FundsDeposited) onDeposited(e: FundsDeposited): void {
    this.balanceCents += e.cents;
  }
  @On(FundsWithdrawn) onWithdrawn(e: FundsWithdrawn): void {
    this.balanceCents -= e.cents;
  }
}

class Deposit extends Command<Wallet> {
  readonly lifecycle = 'mutate';
  constructor(
    readonly aggregateId: string,
    readonly cents: number,
  ) {
    super();
  }
  emit(): FundsDeposited {
    return new FundsDeposited(this.cents, 'EUR');
  }
}

@DomainEvent('CoinAdded')
class CoinAdded {
  constructor(readonly cents: number) {}
}

/** The purse's first state shape: every coin kept. */
@Aggregate({ type: 'Purse', snapshotEvery: 2 })
class PurseV1 extends AggregateRoot {
  coins: number[] = [];
  @On(CoinAdded) onCoin(e: CoinAdded): void {
    this.coins.push(e.cents);
  }
}

const restoredFrom: number[] = [];

/** The purse's second state shape (schema version 2): only the sum. A v1 snapshot restored here would read 0. */
@Aggregate({ type: 'Purse', snapshotEvery: 2, schemaVersion: 2 })
class PurseV2 extends AggregateRoot {
  totalCents = 0;
  @On(CoinAdded) onCoin(e: CoinAdded): void {
    this.totalCents += e.cents;
  }
  override restoreSnapshot(state: Record<string, unknown>): void {
    restoredFrom.push(state.version as number);
    super.restoreSnapshot(state);
  }
}

class AddCoin<A extends AggregateRoot> extends Command<A> {
  constructor(
    readonly aggregateId: string,
    readonly cents: number,
    readonly lifecycle: 'create' | 'mutate' = 'mutate',
  ) {
    super();
  }
  emit(): CoinAdded {
    return new CoinAdded(this.cents);
  }
}

const serializer = new JsonEventSerializer();

describe.each(storeSuites())('event schema evolution (%s)', (_name, makeStores) => {
  let stores: StoresUnderTest;
  function repository<A extends AggregateRoot>(aggregateClass: AggregateClass<A>, tip = true): AggregateRepository<A> {
    stores ??= makeStores();
    return new AggregateRepository(aggregateClass, { events: stores.events, aggregates: stores.events, opaque: stores.opaque }, { logger: { warn: () => undefined }, tip });
  }
  /** Stores envelopes as older code did: JSON, with `schemaVersion` only when given. */
  async function storeOld(wallets: AggregateRepository<Wallet>, id: string, envelopes: Array<[type: string, payload: unknown, schemaVersion?: number]>) {
    await stores.events.save(
      wallets.streamId(id),
      envelopes.map(([type, payload, schemaVersion], i) => {
        const envelope = { type, aggregateId: id, version: i + 1, at: 1_700_000_000_000_000 + i, actor: 'old', payload, ...(schemaVersion ? { schemaVersion } : {}) };
        return { version: i + 1, data: Buffer.from(JSON.stringify(envelope)) };
      }),
    );
    return async () => (await stores.events.load(wallets.streamId(id))).records.map((r) => Buffer.from(r.data).toString('base64'));
  }

  it('reads every older version, and the old type name, as the current class; the stored bytes never change', async () => {
    const wallets = repository(Wallet);
    const id = `w-${randomUUID()}`;
    const stored = await storeOld(wallets, id, [
      ['WalletOpened', { owner: 'ann' }],
      ['MoneyDeposited', { amount: 12.5 }],
      ['FundsDeposited', { amountCents: 199 }, 2],
      ['FundsDeposited', { cents: 1, currency: 'EUR' }, 3],
    ]);
    const before = await stored();
    await wallets.apply(new Deposit(id, 1000));
    expect(await wallets.load(id)).toMatchObject({ owner: 'ann', balanceCents: 1250 + 199 + 1 + 1000, version: 5 });
    const history = await wallets.history(id);
    expect(history.map((e) => [e.type, e.event])).toEqual([
      ['WalletOpened', { owner: 'ann' }],
      ['FundsDeposited', { cents: 1250, currency: 'EUR' }],
      ['FundsDeposited', { cents: 199, currency: 'EUR' }],
      ['FundsDeposited', { cents: 1, currency: 'EUR' }],
      ['FundsDeposited', { cents: 1000, currency: 'EUR' }],
    ]);
    expect(history[1].event).toBeInstanceOf(FundsDeposited);
    // The old records are as they were; the new one carries its schema version.
    expect((await stored()).slice(0, 4)).toEqual(before);
    const [, , , , newest] = (await stores.events.load(wallets.streamId(id))).records.map((r) => serializer.deserializeStored(r.data));
    expect(newest).toMatchObject({ type: 'FundsDeposited', schemaVersion: 3, payload: { cents: 1000, currency: 'EUR' } });
  });

  it('refuses an event whose schema version has no upcaster path, naming the type and both versions', async () => {
    const wallets = repository(Wallet);
    const id = `w-${randomUUID()}`;
    await storeOld(wallets, id, [
      ['WalletOpened', { owner: 'bob' }],
      ['FundsDeposited', { cents: 500, currency: 'EUR' }, 3],
      ['FundsWithdrawn', { amount: 2 }],
    ]);
    for (const read of [() => wallets.load(id), () => wallets.history(id), () => wallets.apply(new Deposit(id, 1))]) {
      const error = await rejectionOf(read());
      expect(error).toBeInstanceOf(UnreadableStreamError);
      expect((error as UnreadableStreamError).version).toBe(3);
      expect((error as Error).message).toMatch(/"FundsWithdrawn" stored at schema version 1 cannot be read as version 3: no upcaster from version 1 to 2/);
      const cause = (error as Error).cause as EventSchemaError;
      expect(cause).toBeInstanceOf(EventSchemaError);
      expect(cause).toMatchObject({ eventType: 'FundsWithdrawn', storedVersion: 1, currentVersion: 3 });
    }
  });

  it('refuses an event of a schema version newer than its class (written by newer code)', async () => {
    const wallets = repository(Wallet);
    const id = `w-${randomUUID()}`;
    await storeOld(wallets, id, [
      ['WalletOpened', { owner: 'cy' }],
      ['FundsDeposited', { cents: 500, currency: 'EUR', fee: 3 }, 4],
    ]);
    const error = await rejectionOf(wallets.load(id));
    expect(error).toBeInstanceOf(UnreadableStreamError);
    expect(((error as Error).cause as EventSchemaError)).toMatchObject({ eventType: 'FundsDeposited', storedVersion: 4, currentVersion: 3 });
  });

  it('passes a tip of another state schema version over, replaying the events, and writes a tip of its own', async () => {
    const v1 = repository(PurseV1);
    const v2 = repository(PurseV2);
    const id = `p-${randomUUID()}`;
    await v1.apply(new AddCoin<PurseV1>(id, 100, 'create'));
    await v1.apply(new AddCoin<PurseV1>(id, 20));
    // The state lives in the tip: no snapshot record in the stream.
    const types = async () => (await stores.events.load(v1.streamId(id))).records.map((r) => serializer.deserializeStored(r.data).type);
    expect(await types()).toEqual(['CoinAdded', 'CoinAdded']);
    restoredFrom.length = 0;
    expect(await v2.get(id)).toMatchObject({ totalCents: 120, version: 2 });
    expect(restoredFrom).toEqual([]); // the v1 tip was not restored into the v2 shape
    await v2.apply(new AddCoin<PurseV2>(id, 3));
    restoredFrom.length = 0;
    expect(await v2.get(id)).toMatchObject({ totalCents: 123, version: 3 });
    expect(restoredFrom).toEqual([3]); // its own tip now
    restoredFrom.length = 0;
    expect(await v1.get(id)).toMatchObject({ coins: [100, 20, 3], version: 3 });
  });

  it('passes a snapshot record of another state schema version over (streams without a tip), replaying the events or from an older snapshot that fits', async () => {
    const v1 = repository(PurseV1, false);
    const v2 = repository(PurseV2, false);
    const id = `p-${randomUUID()}`;
    // Version 1 of the code: records 1 coin, 2 snapshot, 3 coin, 4 snapshot (both of the v1 shape).
    await v1.apply(new AddCoin<PurseV1>(id, 100, 'create'));
    await v1.apply(new AddCoin<PurseV1>(id, 20));
    const records = async () => (await stores.events.load(v1.streamId(id))).records.map((r) => serializer.deserializeStored(r.data));
    expect((await records()).map((e) => [e.type, e.schemaVersion])).toEqual([
      ['CoinAdded', 1],
      [SNAPSHOT_EVENT_TYPE, 1],
      ['CoinAdded', 1],
      [SNAPSHOT_EVENT_TYPE, 1],
    ]);
    // Version 2 reads no v1 snapshot: the newest records hold only one of the old shape, so it replays all.
    restoredFrom.length = 0;
    expect(await v2.load(id)).toMatchObject({ totalCents: 120, version: 4 });
    expect(restoredFrom).toEqual([]);
    // Version 2 writes: 5 coin, 6 snapshot of its own shape; then a rollback to version 1 writes 7 coin, 8 snapshot.
    await v2.apply(new AddCoin<PurseV2>(id, 3));
    await v1.apply(new AddCoin<PurseV1>(id, 4000));
    expect((await records()).slice(4).map((e) => [e.type, e.schemaVersion])).toEqual([
      ['CoinAdded', 1],
      [SNAPSHOT_EVENT_TYPE, 2],
      ['CoinAdded', 1],
      [SNAPSHOT_EVENT_TYPE, 1],
    ]);
    restoredFrom.length = 0;
    expect(await v2.load(id)).toMatchObject({ totalCents: 4123, version: 8 });
    // From the older snapshot that fits (taken after version 5), never from the v1 one at 8.
    expect(restoredFrom).toEqual([5]);
    expect(await v1.load(id)).toMatchObject({ coins: [100, 20, 3, 4000], version: 8 });
  });
});
