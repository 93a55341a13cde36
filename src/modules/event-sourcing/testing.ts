import { AssertionError, deepStrictEqual } from 'node:assert';
import { InMemoryEventStore } from '../event-store/in-memory-event-store.js';
import { InMemoryOpaqueStore } from '../event-store/in-memory-opaque-store.js';
import type { AggregateRoot } from './aggregate-root.js';
import { eventTypeOf } from './aggregate-metadata.js';
import type { Command } from './command.js';
import { JsonEventSerializer, nowMicros } from './event-serializer.js';
import { eventSchemaVersion } from './event-types.js';
import { AggregateRepository, type AggregateClass, type RepositoryOptions } from './repository.js';

/** What a scenario ended with: the new version and the events the command stored, or the error. */
export type ScenarioOutcome = { version: number; events: object[] } | { error: unknown };

type ErrorClass = abstract new (...args: never[]) => Error;

/** `given(...).when(command)`: assert with `.then(events | ErrorClass)`, or read `.outcome()`. */
export interface Scenario {
  /**
   * Asserts the stored events (by type and fields, in order) or the class of the error; rejects with an
   * `AssertionError` otherwise. Named `then` for the given/when/then reading, so a scenario is not a
   * promise: TypeScript refuses to `await` one without `.then(...)` or `.outcome()`.
   */
  then(expected: readonly object[] | ErrorClass): Promise<ScenarioOutcome>;
  /** What happened, without asserting anything. */
  outcome(): Promise<ScenarioOutcome>;
}

/**
 * Given/when/then for aggregates, on the in-memory store: the past events, the command, and the events it
 * must store (compared by type and fields) or the error class it must fail with. Runs without Nest or
 * Cosmos DB, through the same `AggregateRepository` the application uses.
 *
 * @example
 * await given(Order, [new OrderPlaced('c-1', '2026-01-01T00:00:00.000Z')])
 *   .when(new AddLine('o-1', 'sku-1', 2, 5))
 *   .then([new LineAdded('sku-1', 2, 5)]);
 * await given(Order).when(new ShipOrder('o-1')).then(AggregateNotFoundError);
 * const outcome = await given(Order).when(new PlaceOrder('o-1', 'c-1')).outcome();
 */
export function given<A extends AggregateRoot>(
  aggregateClass: AggregateClass<A>,
  events: readonly object[] = [],
  options: Pick<RepositoryOptions, 'serializer'> = {},
): { when(command: Command<A>): Scenario } {
  return {
    when(command) {
      const outcome = run(aggregateClass, events, command, options);
      const scenario = {
        then(expected: readonly object[] | ErrorClass, onRejected?: (reason: unknown) => unknown): Promise<ScenarioOutcome> {
          // Plain JavaScript may still `await` a scenario, which calls then(resolve, reject): give the outcome.
          if (typeof expected === 'function' && !isErrorClass(expected)) {
            return outcome.then(expected as (outcome: ScenarioOutcome) => ScenarioOutcome, onRejected as undefined);
          }
          return outcome.then((result) => check(result, expected));
        },
        outcome: () => outcome,
      };
      return scenario;
    },
  };
}

async function run<A extends AggregateRoot>(
  aggregateClass: AggregateClass<A>,
  past: readonly object[],
  command: Command<A>,
  options: Pick<RepositoryOptions, 'serializer'>,
): Promise<ScenarioOutcome> {
  const serializer = options.serializer ?? new JsonEventSerializer();
  const events = new InMemoryEventStore({ opaqueStore: new InMemoryOpaqueStore() });
  const repository = new AggregateRepository(
    aggregateClass,
    { events, aggregates: events, opaque: new InMemoryOpaqueStore() },
    { serializer, retry: { maxAttempts: 1 }, logger: { warn: () => undefined } },
  );
  const id = command.aggregateId;
  const at = nowMicros();
  try {
    await events.save(
      repository.streamId(id),
      past.map((event, i) => {
        const type = eventTypeOf(event);
        // Past events are instances of today's classes: stored at their current schema version, never upcast.
        const envelope = { type, aggregateId: id, version: i + 1, at, actor: 'given', payload: toJson(event), schemaVersion: eventSchemaVersion(type) };
        return { version: i + 1, data: serializer.serialize(envelope) };
      }),
    );
    const version = await repository.apply(command);
    const stored = (await repository.history(id)).filter((entry) => entry.version > past.length);
    return { version, events: stored.map((entry) => entry.event) };
  } catch (error) {
    return { error };
  }
}

function check(outcome: ScenarioOutcome, expected: readonly object[] | ErrorClass): ScenarioOutcome {
  if (typeof expected === 'function') {
    if ('error' in outcome && outcome.error instanceof expected) return outcome;
    throw new AssertionError({
      message: `expected the command to fail with ${expected.name}, but it ${'error' in outcome ? `failed with ${describeError(outcome.error)}` : `stored ${describeEvents(outcome.events)}`}`,
    });
  }
  if ('error' in outcome) {
    throw new AssertionError({ message: `expected events ${describeEvents(expected)}, but the command failed with ${describeError(outcome.error)}` });
  }
  deepStrictEqual(outcome.events.map(comparable), expected.map(comparable), `expected events ${describeEvents(expected)}, got ${describeEvents(outcome.events)}`);
  return outcome;
}

function isErrorClass(value: unknown): value is ErrorClass {
  return typeof value === 'function' && (value === Error || value.prototype instanceof Error);
}

function comparable(event: object): { type: string; fields: unknown } {
  return { type: eventTypeOf(event), fields: toJson(event) };
}

function toJson(value: object): unknown {
  return JSON.parse(JSON.stringify(value)) as unknown;
}

function describeEvents(events: readonly object[]): string {
  return `[${events.map((e) => `${eventTypeOf(e)} ${JSON.stringify(e)}`).join(', ')}]`;
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
