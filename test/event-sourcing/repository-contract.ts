/*
 * The repository's contract (issue 3), written once and run on the in-memory stores and on the Cosmos DB
 * stores over the embedded server. Every test uses fresh aggregate ids so suites can share one server.
 */
import { randomUUID } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import {
  Aggregate,
  AggregateAlreadyExistsError,
  AggregateNotFoundError,
  AggregateRoot,
  Command,
  CommandContentionError,
  CommandRejectedError,
  CommandValidationError,
  ConcurrencyError,
  ExpectedVersionError,
  IdempotencyKeyReusedError,
  Gsi,
  InvalidStateError,
  JsonEventSerializer,
  On,
  AggregateRepository,
  SNAPSHOT_EVENT_TYPE,
  UnreadableStreamError,
  ValidationError,
  type AggregateClass,
  type AggregateStore,
  type EventContext,
  type EventEnvelope,
  type Evaluation,
  type Materializable,
  type OpaqueStore,
  type OperationOptions,
  type RepositoryOptions,
  type SaveAggregateOptions,
  type SnapshotTailStore,
  type TipStore,
} from '../../src/index.js';
import { rejectionOf } from '../support/rejection.js';

/** The stores a suite runs on; `aggregates` materializes into `opaque`. */
export interface RepositoryStoresUnderTest {
  events: SnapshotTailStore & AggregateStore;
  opaque: OpaqueStore;
}

// --- a small domain --------------------------------------------------------------------------------

class AccountOpened {
  constructor(readonly owner: string) {}
}
class Deposited {
  constructor(
    readonly amount: number,
    readonly reference: string,
    readonly note = '',
  ) {}
}
class AccountClosed {}

/** A view saved beside the account: the owner's balance line. */
class BalanceView implements Materializable {
  constructor(
    readonly owner: string,
    readonly accountId: string,
    readonly balance: number,
    readonly version: number,
  ) {}
  keys() {
    return { pk: `balance#${this.owner}`, sk: this.accountId };
  }
}

@Aggregate({ type: 'Account' })
class Account extends AggregateRoot {
  @Gsi(4, 'pk') owner = '';
  balance = 0;
  status = '';
  references: string[] = [];
  lastActor = '';
  @Gsi(4, 'sk') openedAt = '';

  override currentState(): string | undefined {
    return this.status || undefined;
  }

  override projections(): Materializable[] {
    return [new BalanceView(this.owner, this.id, this.balance, this.version)];
  }

  @On(AccountOpened)
  onOpened(event: AccountOpened, context: EventContext): void {
    this.owner = event.owner;
    this.status = 'open';
    this.lastActor = context.actor;
    this.openedAt = String(context.at).padStart(20, '0');
  }

  @On(Deposited)
  onDeposited(event: Deposited, context: EventContext): void {
    this.balance += event.amount;
    this.references.push(event.reference);
    this.lastActor = context.actor;
  }

  @On(AccountClosed)
  onClosed(): void {
    this.status = 'closed';
  }
}

/** The same account with a snapshot every 10 versions (its own type name, so its own streams). */
@Aggregate({ type: 'SnappedAccount', snapshotEvery: 10 })
class SnappedAccount extends Account {}

/** Reads the streams SnappedAccount writes, but without snapshots: a stream written before they were on. */
@Aggregate({ type: 'SnappedAccount', snapshotEvery: undefined })
class UnsnappedView extends Account {}

/** The stream of SnappedAccount read by a class that snapshots every 4: its tails hold no snapshot of its own. */
@Aggregate({ type: 'SnappedAccount', snapshotEvery: 4 })
class OtherInterval extends Account {}

class Open extends Command<Account> {
  readonly lifecycle = 'create';
  constructor(
    readonly aggregateId: string,
    readonly owner: string,
  ) {
    super();
  }
  override validate(): string[] {
    return this.owner ? [] : ['owner is required'];
  }
  emit(): AccountOpened {
    return new AccountOpened(this.owner);
  }
}

class Deposit extends Command<Account> {
  readonly lifecycle = 'mutate';
  override readonly allowedStates = ['open'];
  constructor(
    readonly aggregateId: string,
    readonly amount: number,
    readonly reference: string = randomUUID(),
    readonly note = '',
  ) {
    super();
  }
  override validate(): string[] {
    return this.amount > 0 ? [] : ['amount must be positive'];
  }
  override evaluate(account: Account): Evaluation {
    if (account.references.includes(this.reference)) return 'skip';
    if (account.balance + this.amount > 1_000_000) return { reject: 'balance limit' };
    return 'proceed';
  }
  emit(): Deposited {
    return new Deposited(this.amount, this.reference, this.note);
  }
}

class DepositMany extends Command<Account> {
  readonly lifecycle = 'mutate';
  constructor(
    readonly aggregateId: string,
    readonly count: number,
  ) {
    super();
  }
  emit(): Deposited[] {
    return Array.from({ length: this.count }, (_, i) => new Deposited(1, `${this.aggregateId}-${i}-${randomUUID()}`));
  }
}

class Close extends Command<Account> {
  readonly lifecycle = 'mutate';
  override readonly allowedStates = ['open'];
  constructor(readonly aggregateId: string) {
    super();
  }
  emit(): AccountClosed {
    return new AccountClosed();
  }
}

class Nothing extends Command<Account> {
  readonly lifecycle = 'mutate';
  constructor(readonly aggregateId: string) {
    super();
  }
  emit(): object[] {
    return [];
  }
}

// --- helpers ---------------------------------------------------------------------------------------

const unique = (label: string) => `${label}-${randomUUID()}`;
const quiet = { warn: () => undefined };
const serializer = new JsonEventSerializer();

function aborted(): OperationOptions {
  const controller = new AbortController();
  controller.abort();
  return { abortSignal: controller.signal };
}

/** A `SnapshotTailStore` that counts the calls and the records each returned. */
function counting(inner: SnapshotTailStore) {
  const calls = { load: 0, loadTail: 0, recordsRead: 0 };
  const store: SnapshotTailStore = {
    save: (id, records, options) => inner.save(id, records, options),
    async load(id, options) {
      calls.load++;
      const history = await inner.load(id, options);
      calls.recordsRead += history.records.length;
      return history;
    },
    async loadTail(id, n, options) {
      calls.loadTail++;
      const history = await inner.loadTail(id, n, options);
      calls.recordsRead += history.records.length;
      return history;
    },
  };
  return { store, calls };
}

// --- the suite -------------------------------------------------------------------------------------

export function describeRepositoryContract(name: string, open: () => Promise<RepositoryStoresUnderTest>): void {
  describe(`repository contract: ${name}`, () => {
    let stores: RepositoryStoresUnderTest;

    beforeEach(async () => {
      stores = await open();
    });

    function repository<A extends AggregateRoot>(cls: AggregateClass<A>, options: RepositoryOptions = {}, events?: SnapshotTailStore) {
      return new AggregateRepository(cls, { events: events ?? stores.events, aggregates: stores.events, opaque: stores.opaque }, { logger: quiet, ...options });
    }

    /** The stores, every save of which loses a race, as if other commands always got there first. */
    function alwaysLosing(): SnapshotTailStore {
      const losing = Object.create(stores.events) as SnapshotTailStore & TipStore;
      losing.save = (streamId, records) => Promise.reject(new ConcurrencyError(streamId, [records[0].version]));
      losing.saveWithTip = (streamId, records) => Promise.reject(new ConcurrencyError(streamId, [records[0].version]));
      return losing;
    }

    async function envelopes(type: string, id: string): Promise<EventEnvelope[]> {
      return (await stores.events.load(`${type}/${id}`)).records.map((r) => serializer.deserialize(r.data));
    }

    async function opened(cls: AggregateClass<Account> = Account, options?: RepositoryOptions) {
      const accounts = repository(cls, options);
      const id = unique('acc');
      await accounts.apply(new Open(id, unique('owner')));
      return { accounts, id };
    }

    describe('lifecycle', () => {
      it('creates at version 1 and refuses a second create of the same id', async () => {
        const accounts = repository(Account);
        const id = unique('acc');
        expect(await accounts.apply(new Open(id, 'ann'))).toBe(1);
        const err = await rejectionOf(accounts.apply(new Open(id, 'bob')));
        expect(err).toBeInstanceOf(AggregateAlreadyExistsError);
        expect((await accounts.load(id)).owner).toBe('ann');
        expect((await envelopes('Account', id)).map((e) => e.version)).toEqual([1]);
      });

      it('refuses to mutate an aggregate without events, before validating the command', async () => {
        const accounts = repository(Account);
        const id = unique('ghost');
        expect(await rejectionOf(accounts.apply(new Deposit(id, 10)))).toBeInstanceOf(AggregateNotFoundError);
        expect(await rejectionOf(accounts.apply(new Deposit(id, -1)))).toBeInstanceOf(AggregateNotFoundError);
        expect(await envelopes('Account', id)).toEqual([]);
      });
    });

    describe('validation, state guard, evaluation', () => {
      it('refuses invalid input with the problems, writing nothing', async () => {
        const { accounts, id } = await opened();
        const err = await rejectionOf(accounts.apply(new Deposit(id, 0)));
        expect(err).toBeInstanceOf(CommandValidationError);
        expect((err as CommandValidationError).problems).toEqual(['amount must be positive']);
        expect(await rejectionOf(accounts.apply(new Open(unique('acc'), '')))).toBeInstanceOf(CommandValidationError);
        expect((await accounts.load(id)).version).toBe(1);
      });

      it('refuses a command in a state it is not allowed in', async () => {
        const { accounts, id } = await opened();
        expect(await accounts.apply(new Close(id))).toBe(2);
        const err = await rejectionOf(accounts.apply(new Deposit(id, 5)));
        expect(err).toBeInstanceOf(InvalidStateError);
        expect((err as InvalidStateError).state).toBe('closed');
        expect((await accounts.load(id)).version).toBe(2);
      });

      it('skips an idempotent repeat: same version back, nothing written', async () => {
        const { accounts, id } = await opened();
        expect(await accounts.apply(new Deposit(id, 5, 'ref-1'))).toBe(2);
        expect(await accounts.apply(new Deposit(id, 5, 'ref-1'))).toBe(2);
        expect(await accounts.apply(new Nothing(id))).toBe(2);
        expect((await accounts.load(id)).balance).toBe(5);
        expect((await envelopes('Account', id)).map((e) => e.type)).toEqual(['AccountOpened', 'Deposited']);
      });

      it('rejects what the evaluation refuses, writing nothing', async () => {
        const { accounts, id } = await opened();
        const err = await rejectionOf(accounts.apply(new Deposit(id, 2_000_000)));
        expect(err).toBeInstanceOf(CommandRejectedError);
        expect((err as Error).message).toContain('balance limit');
        expect((await accounts.load(id)).version).toBe(1);
      });
    });

    describe('events', () => {
      it('stores each emitted event at the next version with type, aggregate id, time and actor', async () => {
        const { accounts, id } = await opened();
        const before = Date.now() * 1000;
        const command = new DepositMany(id, 3);
        command.actor = 'clerk';
        expect(await accounts.apply(command)).toBe(4);
        const stored = await envelopes('Account', id);
        expect(stored.map((e) => [e.type, e.version, e.aggregateId])).toEqual([
          ['AccountOpened', 1, id],
          ['Deposited', 2, id],
          ['Deposited', 3, id],
          ['Deposited', 4, id],
        ]);
        expect(stored[0].actor).toBe('anonymous');
        expect(stored.slice(1).every((e) => e.actor === 'clerk' && e.at >= before && e.at < (Date.now() + 1) * 1000)).toBe(true);
        const account = await accounts.load(id);
        expect([account.version, account.balance, account.lastActor]).toEqual([4, 3, 'clerk']);
      });

      it('history gives the decoded events as instances of their classes', async () => {
        const { accounts, id } = await opened();
        await accounts.apply(new Deposit(id, 7, 'r'));
        const history = await accounts.history(id);
        expect(history.map((h) => [h.type, h.version])).toEqual([
          ['AccountOpened', 1],
          ['Deposited', 2],
        ]);
        expect(history[1].event).toBeInstanceOf(Deposited);
        expect(history[1].event).toEqual(new Deposited(7, 'r'));
      });

      it('namespaces streams by aggregate type: one id, two types, two streams', async () => {
        const id = unique('shared');
        await repository(Account).apply(new Open(id, 'ann'));
        await repository(SnappedAccount).apply(new Open(id, 'bob'));
        expect((await repository(Account).load(id)).owner).toBe('ann');
        expect((await repository(SnappedAccount).load(id)).owner).toBe('bob');
        expect((await stores.events.load(id)).records).toEqual([]);
        expect((await stores.events.load(`Account/${id}`)).records).toHaveLength(1);
      });

      it('gzips events at or above the serializer threshold and reads them back', async () => {
        const { accounts, id } = await opened();
        await accounts.apply(new Deposit(id, 1, 'big', 'x'.repeat(5000)));
        await accounts.apply(new Deposit(id, 1, 'small'));
        const records = (await stores.events.load(`Account/${id}`)).records;
        const isGzip = (data: Uint8Array) => data[0] === 0x1f && data[1] === 0x8b;
        expect(records.map((r) => isGzip(r.data))).toEqual([false, true, false]);
        expect(JSON.parse(gunzipSync(records[1].data).toString()).payload.note).toHaveLength(5000);
        expect((await accounts.history(id))[1].event).toMatchObject({ note: 'x'.repeat(5000) });
      });

      it('takes a pluggable serializer', async () => {
        const reversed = {
          serialize: (e: EventEnvelope) => Buffer.from(JSON.stringify(e)).reverse(),
          deserialize: (data: Uint8Array) => JSON.parse(Buffer.from(data).reverse().toString()) as EventEnvelope,
        };
        const { accounts, id } = await opened(Account, { serializer: reversed });
        await accounts.apply(new Deposit(id, 3));
        expect((await accounts.load(id)).balance).toBe(3);
        const raw = (await stores.events.load(`Account/${id}`)).records[0].data;
        expect(Buffer.from(raw).toString().startsWith('}')).toBe(true);
      });

      it('refuses a command whose events do not fit one batch, writing none of them', async () => {
        const { accounts, id } = await opened();
        // The tip takes the batch's 100th operation: 99 events at most.
        expect(await rejectionOf(accounts.apply(new DepositMany(id, 100)))).toBeInstanceOf(ValidationError);
        expect((await accounts.load(id)).version).toBe(1);
        expect(await accounts.apply(new DepositMany(id, 99))).toBe(100);
        // Without the tip, 100 events fit.
        const streamOnly = repository(Account, { tip: false });
        expect(await rejectionOf(streamOnly.apply(new DepositMany(id, 101)))).toBeInstanceOf(ValidationError);
        expect(await streamOnly.apply(new DepositMany(id, 100))).toBe(200);
      });
    });

    describe('type names and replay', () => {
      it('a subclass without its own @Aggregate type is its own type, with its own streams', async () => {
        @Aggregate({ snapshotEvery: 5 })
        class PremiumAccount extends Account {}
        const id = unique('acc');
        await repository(Account).apply(new Open(id, 'ann'));
        const premium = repository(PremiumAccount);
        expect(premium.type).toBe('PremiumAccount');
        expect(await premium.apply(new Open(id, 'bob'))).toBe(1);
        expect((await premium.load(id)).owner).toBe('bob');
        expect((await repository(Account).load(id)).owner).toBe('ann');
      });

      it('refuses to replay a stream whose first events are missing, rather than build a wrong state', async () => {
        const accounts = repository(Account);
        const id = unique('acc');
        const event = (version: number) => ({
          version,
          data: serializer.serialize({ type: 'Deposited', aggregateId: id, version, at: 0, actor: 'a', payload: new Deposited(1, `r${version}`) }),
        });
        await stores.events.save(`Account/${id}`, [event(2), event(3)]);
        expect(await rejectionOf(accounts.load(id))).toMatchObject({ message: expect.stringMatching(/starts at version 2/) });
        expect(await rejectionOf(accounts.load(id))).toBeInstanceOf(UnreadableStreamError);
        const gappy = unique('acc');
        await stores.events.save(`Account/${gappy}`, [
          { version: 1, data: serializer.serialize({ type: 'AccountOpened', aggregateId: gappy, version: 1, at: 0, actor: 'a', payload: new AccountOpened('x') }) },
          { ...event(3), data: serializer.serialize({ type: 'Deposited', aggregateId: gappy, version: 3, at: 0, actor: 'a', payload: new Deposited(1, 'r') }) },
        ]);
        expect(await rejectionOf(accounts.load(gappy))).toMatchObject({
          constructor: UnreadableStreamError,
          streamId: `Account/${gappy}`,
          version: 2,
          message: expect.stringMatching(/version 2 is missing/),
        });
      });

      it.each([
        ['bytes that are not an event envelope', () => new TextEncoder().encode('{"placed":true}')],
        ['an event type without an @On handler', () => serializer.serialize({ type: 'Forged', aggregateId: 'x', version: 2, at: 0, actor: 'mallory', payload: {} })],
        ['an envelope of another version', () => serializer.serialize({ type: 'Deposited', aggregateId: 'x', version: 7, at: 0, actor: 'a', payload: new Deposited(1, 'r') })],
      ])('fails load, history and commands with UnreadableStreamError naming stream and version for %s', async (_, data) => {
        const { accounts, id } = await opened(Account);
        // Written beside the repository, so its tip is behind the stream: `load` through the tip does not see
        // the record, the stream path does, and a command finds it (its save conflicts, the tip is unchanged,
        // so the next run rebuilds from the stream).
        await stores.events.save(`Account/${id}`, [{ version: 2, data: data() }]);
        const streamOnly = repository(Account, { tip: false });
        for (const call of [() => streamOnly.load(id), () => accounts.history(id), () => accounts.apply(new Deposit(id, 1))]) {
          const err = await rejectionOf(call());
          expect(err).toBeInstanceOf(UnreadableStreamError);
          expect(err).toMatchObject({ aggregateType: 'Account', aggregateId: id, streamId: `Account/${id}`, version: 2 });
          expect((err as Error).message).toContain(`"Account/${id}"`);
        }
      });

      it('restores a snapshot whose JSON carries a getter (derived state) without failing', async () => {
        @Aggregate({ type: 'GetterAccount', snapshotEvery: 3 })
        class GetterAccount extends Account {
          get doubled(): number {
            return this.balance * 2;
          }
          toJSON(): object {
            return { ...this, doubled: this.doubled };
          }
        }
        const accounts = repository(GetterAccount);
        const id = unique('acc');
        await accounts.apply(new Open(id, 'ann'));
        await accounts.apply(new DepositMany(id, 4)); // a snapshot at 3
        const loaded = await accounts.load(id);
        expect([loaded.balance, loaded.doubled]).toEqual([4, 8]);
        expect((await accounts.get(id)).doubled).toBe(8);
      });
    });

    describe('concurrency', () => {
      it('re-runs commands that lose a race: every accepted command stored exactly once', async () => {
        const { accounts, id } = await opened(Account, { maxAttempts: 20 });
        const refs = Array.from({ length: 6 }, (_, i) => `ref-${i}`);
        const versions = await Promise.all(refs.map((ref) => accounts.apply(new Deposit(id, 10, ref))));
        expect([...versions].sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7]);
        const stored = await envelopes('Account', id);
        expect(stored.map((e) => e.version)).toEqual([1, 2, 3, 4, 5, 6, 7]);
        expect(stored.slice(1).map((e) => (e.payload as Deposited).reference).sort()).toEqual(refs);
        expect((await accounts.load(id)).balance).toBe(60);
      });

      it('absorbs a burst of 20 concurrent commands on one aggregate with the default budget, each stored once', async () => {
        const { accounts, id } = await opened(Account);
        const refs = Array.from({ length: 20 }, (_, i) => `burst-${i}`);
        const results = await Promise.allSettled(refs.map((ref) => accounts.apply(new Deposit(id, 1, ref))));
        expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
        const stored = await envelopes('Account', id);
        expect(stored.map((e) => e.version)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
        expect(stored.slice(1).map((e) => (e.payload as Deposited).reference).sort()).toEqual([...refs].sort());
      });

      it('takes the default for a retry option given as undefined, and still gives up in time', async () => {
        const { id } = await opened(Account);
        // Every save loses, as if other commands always got there first.
        const losing = alwaysLosing();
        const accounts = repository(Account, { retry: { maxElapsedMs: 50, initialDelayMs: undefined, maxDelayMs: undefined } }, losing);
        const err = await rejectionOf(accounts.apply(new Deposit(id, 1)));
        expect(err).toBeInstanceOf(CommandContentionError);
        expect((err as CommandContentionError).attempts).toBeGreaterThan(1);
        // The 50 ms budget, not the default 5 s (timers may fire a little late on a loaded machine).
        expect((err as CommandContentionError).elapsedMs).toBeLessThan(1000);
      });

      it('backs off from 1 ms when initialDelayMs is 0, rather than re-running at once for the whole budget', async () => {
        const { id } = await opened(Account);
        const losing = alwaysLosing();
        const accounts = repository(Account, { retry: { maxElapsedMs: 300, initialDelayMs: 0, maxDelayMs: 50 } }, losing);
        const err = await rejectionOf(accounts.apply(new Deposit(id, 1)));
        expect(err).toBeInstanceOf(CommandContentionError);
        // With waits growing to 50 ms, a 300 ms budget holds a few dozen runs at most, not hundreds.
        expect((err as CommandContentionError).attempts).toBeLessThan(60);
      });

      it('gives up with CommandContentionError once the time budget is spent, naming the aggregate, not its stream', async () => {
        const { id } = await opened(Account);
        // Five instances: within one, commands on an aggregate queue up and never race.
        const results = await Promise.allSettled(
          Array.from({ length: 5 }, (_, i) => repository(Account, { retry: { maxElapsedMs: 0 } }).apply(new Deposit(id, 1, `t${i}`))),
        );
        const failed = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
        expect(failed.length).toBeGreaterThan(0);
        for (const err of failed) {
          expect(err).toBeInstanceOf(CommandContentionError);
          expect(err).toBeInstanceOf(ConcurrencyError); // isConflict(err) callers keep working
          expect(err).toMatchObject({ aggregateType: 'Account', id, aggregateId: `Account/${id}`, attempts: 1 });
          expect((err as Error).message).not.toContain(`Account/${id}`);
          expect((err as Error).message).toMatch(/run it again/);
        }
        const accepted = results.flatMap((r, i) => (r.status === 'fulfilled' ? [`t${i}`] : []));
        const stored = (await envelopes('Account', id)).slice(1).map((e) => (e.payload as Deposited).reference);
        expect(stored.sort()).toEqual(accepted.sort());
      });

      it.each([
        [{ retry: null }, 'retry'],
        [{ retry: { maxElapsedMs: -1 } }, 'retry.maxElapsedMs'],
        [{ retry: { initialDelayMs: Number.NaN } }, 'retry.initialDelayMs'],
        [{ retry: { maxDelayMs: '10' } }, 'retry.maxDelayMs'],
        [{ retry: { maxAttempts: 0 } }, 'retry.maxAttempts'],
        [{ retry: { initialDelayMs: 50, maxDelayMs: 10 } }, 'retry.initialDelayMs'],
      ])('refuses the retry option %j naming %s', (options, field) => {
        let err: unknown;
        try {
          repository(Account, options as unknown as RepositoryOptions);
        } catch (caught) {
          err = caught;
        }
        expect(err).toBeInstanceOf(ValidationError);
        expect((err as ValidationError).field).toBe(field);
      });

      it('surfaces ConcurrencyError after maxAttempts, and then nothing of that command is stored', async () => {
        const { id } = await opened(Account);
        const results = await Promise.allSettled(
          Array.from({ length: 5 }, (_, i) => repository(Account, { maxAttempts: 1 }).apply(new Deposit(id, 1, `r${i}`))),
        );
        const failed = results.filter((r) => r.status === 'rejected');
        expect(failed.length).toBeGreaterThan(0);
        expect(failed.every((r) => (r as PromiseRejectedResult).reason instanceof ConcurrencyError)).toBe(true);
        const accepted = results.flatMap((r, i) => (r.status === 'fulfilled' ? [`r${i}`] : []));
        const stored = (await envelopes('Account', id)).slice(1).map((e) => (e.payload as Deposited).reference);
        expect(stored.sort()).toEqual(accepted.sort());
      });
    });

    describe('idempotency keys and expected versions (issue 16)', () => {
      it('a repeated key answers the first outcome and stores nothing, also through another instance', async () => {
        const { accounts, id } = await opened();
        expect(await accounts.apply(new Deposit(id, 5, 'r-1'), { idempotencyKey: 'k-1' })).toBe(2);
        await accounts.apply(new Deposit(id, 7, 'r-2'));
        // The same command again, with its key: the first outcome, although the aggregate moved on since.
        expect(await accounts.apply(new Deposit(id, 5, 'r-1'), { idempotencyKey: 'k-1' })).toBe(2);
        // Another instance (its own cache), as a client retrying after a lost acknowledgement would reach.
        expect(await repository(Account).apply(new Deposit(id, 5, 'r-1'), { idempotencyKey: 'k-1' })).toBe(2);
        expect((await envelopes('Account', id)).map((e) => e.version)).toEqual([1, 2, 3]);
        expect((await accounts.load(id)).balance).toBe(12);
      });

      it('refuses the same key with a different command (422), storing nothing; keys never reach other aggregates', async () => {
        const { accounts, id } = await opened();
        await accounts.apply(new Deposit(id, 5, 'r-1'), { idempotencyKey: 'k' });
        const err = await rejectionOf(accounts.apply(new Deposit(id, 6, 'r-1'), { idempotencyKey: 'k' }));
        expect(err).toBeInstanceOf(IdempotencyKeyReusedError);
        expect(err).toBeInstanceOf(CommandRejectedError);
        expect((await envelopes('Account', id)).map((e) => e.version)).toEqual([1, 2]);
        const { id: other } = await opened();
        expect(await accounts.apply(new Deposit(other, 5, 'r-1'), { idempotencyKey: 'k' })).toBe(2);
      });

      it('forgets a key after the window', async () => {
        const { id } = await opened();
        const accounts = repository(Account, { idempotencyWindowSeconds: 1 });
        expect(await accounts.apply(new Deposit(id, 5), { idempotencyKey: 'k' })).toBe(2);
        await new Promise((resolve) => setTimeout(resolve, 2100));
        // Another reference: the command would be a different one, but the key is forgotten.
        expect(await accounts.apply(new Deposit(id, 6), { idempotencyKey: 'k' })).toBe(3);
      });

      it('expectedVersion: another version is an ExpectedVersionError naming both, never re-run, nothing stored', async () => {
        const { accounts, id } = await opened();
        expect(await accounts.apply(new Deposit(id, 5), { expectedVersion: 1 })).toBe(2);
        const err = await rejectionOf(accounts.apply(new Deposit(id, 5), { expectedVersion: 1 }));
        expect(err).toBeInstanceOf(ExpectedVersionError);
        expect(err).toBeInstanceOf(ConcurrencyError);
        expect(err).toMatchObject({ expected: 1, found: 2, id });
        expect((await envelopes('Account', id)).map((e) => e.version)).toEqual([1, 2]);
        expect(await rejectionOf(repository(Account).apply(new Open(unique('acc'), 'ann'), { expectedVersion: 3 }))).toBeInstanceOf(ExpectedVersionError);
        expect(await repository(Account).apply(new Open(unique('acc'), 'ann'), { expectedVersion: 0 })).toBe(1);
      });
    });

    describe('snapshots', () => {
      it('with the tip, stores no snapshot record: every version is an event, and each command answers its last event', async () => {
        const { accounts, id } = await opened(SnappedAccount);
        expect(await accounts.apply(new DepositMany(id, 12))).toBe(13);
        for (let i = 0; i < 10; i++) await accounts.apply(new Deposit(id, 1));
        const stored = await envelopes('SnappedAccount', id);
        expect(stored.map((e) => e.version)).toEqual(Array.from({ length: 23 }, (_, i) => i + 1));
        expect(stored.some((e) => e.type === SNAPSHOT_EVENT_TYPE)).toBe(false);
        expect((await accounts.history(id)).map((h) => h.version)).toEqual(stored.map((e) => e.version));
        expect(await accounts.apply(new Deposit(id, 1))).toBe(24);
        expect((await accounts.load(id)).balance).toBe(23);
      });

      it('a stream written with snapshot records (before the tip) still loads, hides them and gains a tip on its next command', async () => {
        const { accounts: old, id } = await opened(SnappedAccount, { tip: false });
        await old.apply(new DepositMany(id, 12)); // versions 2..14, a snapshot at 10
        const accounts = repository(SnappedAccount);
        expect([(await accounts.load(id)).version, (await accounts.load(id)).balance]).toEqual([14, 12]);
        expect(await accounts.apply(new Deposit(id, 1))).toBe(15);
        expect((await accounts.get(id)).balance).toBe(13);
        expect((await accounts.history(id)).map((h) => h.version)).not.toContain(10);
      });

      it('stores a snapshot at every multiple of the interval, also inside one command', async () => {
        const { accounts, id } = await opened(SnappedAccount, { tip: false });
        await accounts.apply(new DepositMany(id, 12)); // versions 2..14, with a snapshot at 10
        for (let i = 0; i < 10; i++) await accounts.apply(new Deposit(id, 1)); // up to 25, snapshot at 20
        const stored = await envelopes('SnappedAccount', id);
        expect(stored.filter((e) => e.type === SNAPSHOT_EVENT_TYPE).map((e) => e.version)).toEqual([10, 20]);
        expect(stored.map((e) => e.version)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
        expect((await accounts.history(id)).map((h) => h.version)).not.toContain(10);
      });

      it('loads from the newest snapshot in a tail of the interval: same state, at most that many records', async () => {
        const { accounts, id } = await opened(SnappedAccount, { tip: false });
        for (let i = 0; i < 4; i++) await accounts.apply(new DepositMany(id, 9));
        const { store, calls } = counting(stores.events);
        const fast = await repository(SnappedAccount, {}, store).load(id);
        expect(calls).toEqual({ load: 0, loadTail: 1, recordsRead: 10 });
        const full = await repository(UnsnappedView).load(id); // replays every event, ignoring snapshots
        expect(full.version).toBe(fast.version);
        expect(JSON.stringify(fast)).toBe(JSON.stringify(full));
        expect(fast).toBeInstanceOf(SnappedAccount);
        expect(fast.balance).toBe(36);
      });

      it('reads the whole stream when the tail holds no snapshot, and still gets the state right', async () => {
        const { accounts, id } = await opened(UnsnappedView);
        await accounts.apply(new DepositMany(id, 30)); // written without snapshots
        const { store, calls } = counting(stores.events);
        const account = await repository(OtherInterval, {}, store).load(id);
        expect(calls.load).toBe(1);
        expect([account.version, account.balance]).toEqual([31, 30]);
      });
    });

    describe('materialization and queries', () => {
      it('get returns the materialized aggregate, typed; unknown ids are AggregateNotFoundError', async () => {
        const { accounts, id } = await opened();
        await accounts.apply(new Deposit(id, 4));
        const account = await accounts.get(id);
        expect(account).toBeInstanceOf(Account);
        expect([account.id, account.version, account.balance, account.status]).toEqual([id, 2, 4, 'open']);
        expect(await rejectionOf(accounts.get(unique('none')))).toBeInstanceOf(AggregateNotFoundError);
      });

      it('query reads a secondary-index slot, paginated, as typed aggregates', async () => {
        const accounts = repository(Account);
        const owner = unique('owner');
        const ids = [unique('a'), unique('b'), unique('c')];
        for (const id of ids) await accounts.apply(new Open(id, owner));
        const first = await accounts.query({ index: 4, pk: owner, limit: 2 });
        expect(first.items.map((a) => a.id)).toEqual(ids.slice(0, 2));
        expect(first.items[0]).toBeInstanceOf(Account);
        const second = await accounts.query({ index: 4, pk: owner, limit: 2, continuationToken: first.continuationToken });
        expect(second.items.map((a) => a.id)).toEqual(ids.slice(2));
        expect(second.continuationToken).toBeUndefined();
      });

      it('query and get return only their own type, though another type shares the slot and the keys', async () => {
        // Card uses slot 4 as Account does, and both keep their documents under (id, its type): a Card must
        // never come back as an Account, whatever the page size.
        @Aggregate({ type: 'Card' })
        class Card extends Account {}
        const accounts = repository(Account);
        const cards = repository(Card);
        const owner = unique('owner');
        const [cardA, account, cardB] = [unique('a'), unique('b'), unique('c')];
        await cards.apply(new Open(cardA, owner) as unknown as Command<Card>);
        await accounts.apply(new Open(account, owner));
        await cards.apply(new Open(cardB, owner) as unknown as Command<Card>);
        expect((await accounts.query({ index: 4, pk: owner })).items.map((a) => a.id)).toEqual([account]);
        expect((await cards.query({ index: 4, pk: owner })).items.map((c) => [c.id, c instanceof Card])).toEqual([
          [cardA, true],
          [cardB, true],
        ]);
        const ids: string[] = [];
        let token: string | undefined;
        do {
          const page = await accounts.query({ index: 4, pk: owner, limit: 1, continuationToken: token });
          ids.push(...page.items.map((a) => a.id));
          token = page.continuationToken;
        } while (token);
        expect(ids).toEqual([account]);
        // A Card whose document sits where an Account of that id would be is not that Account.
        await stores.opaque.put({ ...(await stores.opaque.get(cardA, 'Card')), pk: account + '-x', sk: 'Account' });
        expect(await rejectionOf(accounts.get(account + '-x'))).toBeInstanceOf(AggregateNotFoundError);
      });

      it('query passes over documents that are not JSON aggregates (another writer, protobuf bodies) in its slot', async () => {
        const accounts = repository(Account);
        const owner = unique('owner');
        const id = unique('acc');
        await accounts.apply(new Open(id, owner));
        // As a protosource view sharing slot 4: a binary body, not JSON.
        await stores.opaque.put({ pk: unique('pv'), sk: 'AGG', body: new Uint8Array([0x0a, 0x03, 0x70, 0x2d, 0x31]), gsi: { 4: { pk: owner, sk: '0' } } });
        await stores.opaque.put({ pk: unique('pv'), sk: 'AGG', body: new TextEncoder().encode('[1,2]'), gsi: { 4: { pk: owner, sk: '1' } } });
        expect((await accounts.query({ index: 4, pk: owner })).items.map((a) => a.id)).toEqual([id]);
      });

      it('keeps a projection without a version up to date (upserted, not ordered)', async () => {
        class Unversioned extends Account {
          override projections(): Materializable[] {
            const { id, balance } = this;
            return [{ keys: () => ({ pk: `unversioned#${id}`, sk: 'view' }), toJSON: () => ({ balance }) } as Materializable];
          }
        }
        const accounts = repository(Unversioned);
        const id = unique('acc');
        await accounts.apply(new Open(id, 'ann'));
        await accounts.apply(new Deposit(id, 5));
        await accounts.apply(new Deposit(id, 6));
        expect(JSON.parse(Buffer.from((await stores.opaque.get(`unversioned#${id}`, 'view')).body).toString())).toEqual({ balance: 11 });
      });

      it('saves the projections beside the aggregate', async () => {
        const { accounts, id } = await opened();
        const owner = (await accounts.load(id)).owner;
        await accounts.apply(new Deposit(id, 9));
        const view = await stores.opaque.get(`balance#${owner}`, id);
        expect(view.version).toBe(2);
        expect(JSON.parse(Buffer.from(view.body).toString())).toMatchObject({ balance: 9, accountId: id });
      });

      it('a slow materialization never overwrites a newer one (two writers finishing out of order)', async () => {
        const { id } = await opened();
        let releaseFirst!: () => void;
        const firstHeld = new Promise<void>((resolve) => (releaseFirst = resolve));
        let held = false;
        const slow: AggregateStore = {
          saveAggregate: async (aggregate: Materializable, options?: SaveAggregateOptions) => {
            if (!held) {
              held = true;
              await firstHeld; // writer 1 stalls after its events are stored
            }
            return stores.events.saveAggregate(aggregate, options);
          },
        };
        const writer1 = new AggregateRepository(Account, { events: stores.events, aggregates: slow, opaque: stores.opaque }, { logger: quiet });
        const writer2 = repository(Account);
        const first = writer1.apply(new Deposit(id, 1));
        while (!held) await new Promise((resolve) => setTimeout(resolve, 1));
        expect(await writer2.apply(new Deposit(id, 2))).toBe(3);
        releaseFirst();
        expect(await first).toBe(2);
        const account = await writer2.get(id);
        expect([account.version, account.balance]).toEqual([3, 3]);
      });

      it('a failed materialization is logged with the aggregate id; the command still succeeds', async () => {
        const { id } = await opened();
        const warnings: string[] = [];
        const broken: AggregateStore = { saveAggregate: async () => Promise.reject(new Error('aggregates container down')) };
        const accounts = new AggregateRepository(Account, { events: stores.events, aggregates: broken, opaque: stores.opaque }, { logger: { warn: (m: string) => void warnings.push(m) } });
        expect(await accounts.apply(new Deposit(id, 1))).toBe(2);
        expect(warnings.length).toBeGreaterThan(0);
        expect(warnings[0]).toContain(id);
        expect(warnings[0]).toContain('aggregates container down');
        expect((await accounts.load(id)).balance).toBe(1);
      });
    });

    describe('AbortSignal', () => {
      it('an aborted signal stops apply, load, history, get and query before anything is written', async () => {
        const { accounts, id } = await opened();
        for (const call of [
          accounts.apply(new Deposit(id, 1), aborted()),
          accounts.load(id, aborted()),
          accounts.history(id, aborted()),
          accounts.get(id, aborted()),
          accounts.query({ index: 4, pk: 'x' }, aborted()),
        ]) {
          expect(await rejectionOf(call)).toMatchObject({ name: 'AbortError' });
        }
        expect((await accounts.load(id)).version).toBe(1);
      });
    });
  });
}
