/*
 * What the property suites share: the two implementations side by side (in memory, and Cosmos DB on the
 * embedded server behind a request-counting client), the classification of a call's outcome, and the
 * arbitraries of hostile input.
 */
import type { Container, CosmosClient, PluginConfig } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import {
  ConcurrencyError,
  CosmosEventStore,
  CosmosOpaqueStore,
  ensureContainers,
  ensureDatabase,
  NotFoundError,
  ValidationError,
  type EventStoreOptions,
  type OpaqueStore,
} from '../../src/index.js';
import { InMemoryEventStore, InMemoryOpaqueStore } from '../../src/testing.js';
import { clientWithPlugins, startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';

/** Both implementations, fed the same calls in the same order, so their states stay equal. */
export interface Pair<T> {
  memory: T;
  cosmos: T;
}

/** An embedded server, a client whose every network attempt is counted, and store pairs on it. */
export class PropertyFixture {
  private sent = 0;

  private constructor(
    private readonly fixture: CosmosFixture,
    private readonly counted: CosmosClient,
  ) {}

  static async start(): Promise<PropertyFixture> {
    const fixture = await startCosmosFixture();
    const holder: { self?: PropertyFixture } = {};
    const count: PluginConfig = {
      on: 'request',
      plugin: (context, _diagnostics, next) => {
        if (holder.self) holder.self.sent++;
        return next(context);
      },
    };
    const counted = clientWithPlugins(
      // No timer-driven account refresh may add a request while a property counts.
      { endpoint: fixture.cosmos.endpoint, key: fixture.cosmos.key, connectionPolicy: { enableBackgroundEndpointRefreshing: false } },
      [count],
    );
    holder.self = new PropertyFixture(fixture, counted);
    return holder.self;
  }

  /** Requests sent so far through the counted client. */
  get requests(): number {
    return this.sent;
  }

  /**
   * Fresh containers in a fresh database, so a pair starts empty on both sides: the Cosmos store must
   * see exactly the calls its in-memory twin sees.
   */
  async containers(): Promise<{ events: Container; aggregates: Container }> {
    const database = await ensureDatabase(this.counted, `props-${randomUUID()}`);
    await ensureContainers(database, 'events', 'aggregates');
    return { events: database.container('events'), aggregates: database.container('aggregates') };
  }

  async eventStores(options: EventStoreOptions = {}): Promise<Pair<InMemoryEventStore | CosmosEventStore>> {
    const { events } = await this.containers();
    return { memory: new InMemoryEventStore(options), cosmos: new CosmosEventStore(events, options) };
  }

  async opaqueStores(): Promise<Pair<OpaqueStore>> {
    const { aggregates } = await this.containers();
    return { memory: new InMemoryOpaqueStore(), cosmos: new CosmosOpaqueStore(aggregates) };
  }

  /** Event stores that materialize into opaque stores, for `saveAggregate`. */
  async aggregateStores(): Promise<Pair<{ store: InMemoryEventStore | CosmosEventStore; opaque: OpaqueStore }>> {
    const { events, aggregates } = await this.containers();
    const memoryOpaque = new InMemoryOpaqueStore();
    const cosmosOpaque = new CosmosOpaqueStore(aggregates);
    return {
      memory: { store: new InMemoryEventStore({ opaqueStore: memoryOpaque }), opaque: memoryOpaque },
      cosmos: { store: new CosmosEventStore(events, { opaqueStore: cosmosOpaque }), opaque: cosmosOpaque },
    };
  }

  /** What `fn` resolved to, and how many requests it sent. */
  async counting<T>(fn: () => Promise<T>): Promise<{ result: T; requests: number }> {
    const before = this.sent;
    const result = await fn();
    return { result, requests: this.sent - before };
  }

  async close(): Promise<void> {
    this.counted.dispose();
    await this.fixture.close();
  }
}

/** How a call ended. Anything else (a raw Cosmos error, a TypeError...) is rethrown and fails the property. */
export type Outcome<T> =
  | { kind: 'ok'; value: T }
  | { kind: 'invalid'; field: string }
  | { kind: 'conflict'; versions: readonly number[] }
  | { kind: 'not-found' };

export async function outcomeOf<T>(promise: Promise<T>): Promise<Outcome<T>> {
  try {
    return { kind: 'ok', value: await promise };
  } catch (err) {
    if (err instanceof ValidationError) {
      if (!err.message.includes(err.field)) {
        throw new Error(`a ValidationError whose message does not name ${err.field}: ${err.message}`, { cause: err });
      }
      return { kind: 'invalid', field: err.field };
    }
    if (err instanceof ConcurrencyError) return { kind: 'conflict', versions: err.versions };
    if (err instanceof NotFoundError) return { kind: 'not-found' };
    throw err;
  }
}

/** The same call on both stores, in memory first; the Cosmos one counted. */
export async function onBoth<S, T>(
  fixture: PropertyFixture,
  stores: Pair<S>,
  call: (store: S) => Promise<T>,
): Promise<{ memory: Outcome<T>; cosmos: Outcome<T>; requests: number }> {
  const memory = await outcomeOf(call(stores.memory));
  const { result: cosmos, requests } = await fixture.counting(() => outcomeOf(call(stores.cosmos)));
  return { memory, cosmos, requests };
}

/** Both stores refused the input alike, and the Cosmos one before sending anything; or both accepted it. */
export function expectAgreement(both: { memory: Outcome<unknown>; cosmos: Outcome<unknown>; requests: number }): void {
  const { memory, cosmos, requests } = both;
  const shape = (o: Outcome<unknown>) => (o.kind === 'ok' ? { kind: 'ok' } : o);
  expect(shape(cosmos)).toEqual(shape(memory));
  if (memory.kind === 'invalid') expect(requests).toBe(0);
}

/** `n` runs, scaled by PROPERTY_RUNS (a factor, default 1) for a deeper search: `PROPERTY_RUNS=20 npm test -- test/properties`. */
export const runs = (n: number) => Math.max(1, Math.round(n * Number(process.env.PROPERTY_RUNS ?? 1)));

export const nowSeconds = () => Math.floor(Date.now() / 1000);

export const sameBytes = (actual: Uint8Array, expected: Uint8Array) =>
  Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(
    Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength),
  );

export const utf8Bytes = (s: string) => Buffer.byteLength(s, 'utf8');

// --- arbitraries ------------------------------------------------------------------------------------

/** One UTF-16 "character" of hostile text: ids' forbidden characters, controls, spaces, astral, lone surrogates. */
export const hostileChar: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('a', 'b', 'Z', '0', '-', '_', '.') },
  { weight: 3, arbitrary: fc.constantFrom('/', '\\', '?', '#', '%', '%2F', '%25', '"', "'", '&', '+', '=', ';', ':', '@', '$', ',') },
  { weight: 2, arbitrary: fc.constantFrom(' ', '\t', '\n', '\r', '\u0000', '\u0001', '\u007f', '\u00a0', '\u2028', '\u3000', '\ufeff') },
  { weight: 2, arbitrary: fc.constantFrom('é', 'ß', '中', '\uffff', '\ue000', '😀', '\u{10ffff}', '\u{1f1eb}\u{1f1f7}', 'e\u0301') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: fc.constantFrom('\ud800', '\udfff', '\ud83d') },
);

/** Short hostile text, empty included. */
export const hostileText = (maxLength = 12): fc.Arbitrary<string> =>
  fc.array(hostileChar, { maxLength }).map((chars) => chars.join(''));

/** Text of about `bytes` bytes of UTF-8 (at most one character more), made of one repeated character. */
export const textOfBytes = (bytes: fc.Arbitrary<number>): fc.Arbitrary<string> =>
  fc.tuple(hostileChar, bytes).map(([c, n]) => c.repeat(Math.max(1, Math.ceil(n / Math.max(1, utf8Bytes(c))))));

/** A key such as an aggregate id or a partition key: mostly short, some around the 2,048-byte limit, some empty. */
export const keyText: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: hostileText() },
  { weight: 2, arbitrary: textOfBytes(fc.integer({ min: 2040, max: 2056 })) },
  { weight: 1, arbitrary: fc.constant('') },
);

/** A number that may or may not be a usable version/count: small integers mostly, every odd number some. */
export const anyNumber = (min: number, max: number): fc.Arbitrary<number> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min, max }) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        0,
        -0,
        -1,
        0.5,
        1.5,
        Number.NaN,
        Number.POSITIVE_INFINITY,
        Number.NEGATIVE_INFINITY,
        Number.MAX_SAFE_INTEGER,
        Number.MAX_SAFE_INTEGER + 1,
        2 ** 53 + 2,
        1e21,
        Number.MIN_VALUE,
      ),
    },
    { weight: 1, arbitrary: fc.double() },
  );

/** Bytes, sometimes as a view into a larger buffer or as a Node Buffer. */
export const bytes = (maxLength = 48): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.uint8Array({ maxLength }) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.uint8Array({ maxLength }), fc.nat(5), fc.nat(5))
        .map(([inner, before, after]) => {
          const backing = new Uint8Array(before + inner.length + after).fill(0xee);
          backing.set(inner, before);
          return backing.subarray(before, before + inner.length);
        }),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength }).map((b) => Buffer.from(b)) },
  );

/**
 * An absolute expiry in epoch seconds, or something that is not one. Live and expired values stay at least
 * 100 s away from now, so the two stores cannot see a different second.
 */
export const expiry = (): fc.Arbitrary<number | undefined> => {
  const now = nowSeconds();
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: fc.constant(0) },
    { weight: 2, arbitrary: fc.integer({ min: now + 100, max: now + 10 * 365 * 86_400 }) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: now - 100 }) },
    // Either side of Cosmos DB's 32-bit item ttl (about 68 years ahead), and the largest numbers a caller could give.
    { weight: 1, arbitrary: fc.integer({ min: now + 2 ** 31 - 10_000, max: now + 2 ** 31 - 100 }) },
    { weight: 1, arbitrary: fc.integer({ min: now + 2 ** 31 + 100, max: now + 2 ** 31 + 10_000 }) },
    { weight: 1, arbitrary: fc.constantFrom(Number.MAX_SAFE_INTEGER, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY) },
  );
};
