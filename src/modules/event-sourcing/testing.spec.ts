/*
 * The given/when/then helper itself, on a tiny counter aggregate: it must pass for exactly the right
 * outcome and fail (AssertionError) for anything else, or consumers' domain tests prove nothing.
 */
import { AssertionError } from 'node:assert';
import { describe, expect, it } from '@jest/globals';
import { NotFoundError, ValidationError } from '../event-store/index.js';
import { Aggregate, On } from './aggregate-metadata.js';
import { AggregateRoot } from './aggregate-root.js';
import { Command, type Evaluation } from './command.js';
import { JsonEventSerializer, type EventEnvelope } from './event-serializer.js';
import {
  AggregateAlreadyExistsError,
  AggregateNotFoundError,
  CommandError,
  CommandRejectedError,
  CommandValidationError,
  InvalidStateError,
} from './event-sourcing.errors.js';
import { given, type ScenarioOutcome } from './testing.js';

// --- a tiny domain -----------------------------------------------------------------------------------
class Opened {
  constructor(readonly owner: string) {}
}
class Incremented {
  constructor(
    readonly by: number,
    readonly total: number,
  ) {}
}
/** Same fields as `Incremented`, another type: the helper must tell them apart. */
class Decremented {
  constructor(
    readonly by: number,
    readonly total: number,
  ) {}
}
class Closed {}

@Aggregate({ type: 'Counter' })
class Counter extends AggregateRoot {
  owner = '';
  count = 0;
  closed = false;

  override currentState(): string | undefined {
    return this.version === 0 ? undefined : this.closed ? 'closed' : 'open';
  }

  @On(Opened) onOpened(e: Opened): void {
    this.owner = e.owner;
  }
  @On(Incremented) onIncremented(e: Incremented): void {
    this.count = e.total;
  }
  @On(Decremented) onDecremented(e: Decremented): void {
    this.count = e.total;
  }
  @On(Closed) onClosed(): void {
    this.closed = true;
  }
}

class Open extends Command<Counter> {
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
  emit(): Opened {
    return new Opened(this.owner);
  }
}

/** Emits `times` events, each carrying the running total (so the past events must have been applied). */
class Increment extends Command<Counter> {
  readonly lifecycle = 'mutate';
  override readonly allowedStates = ['open'];
  constructor(
    readonly aggregateId: string,
    readonly by: number,
    readonly times = 1,
  ) {
    super();
  }
  override evaluate(counter: Counter): Evaluation {
    if (this.by === 0) return 'skip';
    if (counter.count + this.by * this.times > 100) return { reject: 'a counter stops at 100' };
    return 'proceed';
  }
  emit(counter: Counter): Incremented[] {
    return Array.from({ length: this.times }, (_, i) => new Incremented(this.by, counter.count + this.by * (i + 1)));
  }
}

class Close extends Command<Counter> {
  readonly lifecycle = 'mutate';
  override readonly allowedStates = ['open'];
  constructor(readonly aggregateId: string) {
    super();
  }
  emit(): Closed {
    return new Closed();
  }
}

/** A command whose handler-less event makes the repository fail with a plain (non-command) error. */
class Unhandled {}
class EmitUnhandled extends Command<Counter> {
  readonly lifecycle = 'mutate';
  constructor(readonly aggregateId: string) {
    super();
  }
  emit(): Unhandled {
    return new Unhandled();
  }
}

const opened = new Opened('ann');

/** The assertion's rejection: it must be an AssertionError, not any error the scenario happened to raise. */
async function failure(promise: PromiseLike<unknown>): Promise<AssertionError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  if (caught === undefined) throw new Error('expected the scenario assertion to fail, but it passed');
  expect(caught).toBeInstanceOf(AssertionError);
  return caught as AssertionError;
}

describe('given(...).when(...).then(events)', () => {
  it('passes when the command stores exactly the expected events, and resolves to the outcome', async () => {
    const outcome = await given(Counter).when(new Open('c-1', 'ann')).then([new Opened('ann')]);
    expect(outcome).toEqual({ version: 1, events: [new Opened('ann')] });
  });

  it('applies the past events before the command (state and version follow from them)', async () => {
    await given(Counter, [opened, new Incremented(5, 5), new Incremented(2, 7)])
      .when(new Increment('c-1', 3, 2))
      .then([new Incremented(3, 10), new Incremented(3, 13)]);
    const outcome = await given(Counter, [opened, new Incremented(5, 5), new Incremented(2, 7)]).when(new Increment('c-1', 3)).outcome();
    expect(outcome).toEqual({ version: 4, events: [new Incremented(3, 10)] });
  });

  it('applies past events that change the state a guard checks', async () => {
    await given(Counter, [opened]).when(new Close('c-1')).then([new Closed()]);
    await given(Counter, [opened, new Closed()]).when(new Close('c-1')).then(InvalidStateError);
    // A past event the evaluation depends on: 95 + 10 is over the limit.
    await given(Counter, [opened, new Incremented(95, 95)]).when(new Increment('c-1', 10)).then(CommandRejectedError);
  });

  it('passes with [] for a command that skips', async () => {
    await given(Counter, [opened]).when(new Increment('c-1', 0)).then([]);
  });

  it('fails for an event with other field values', async () => {
    const err = await failure(given(Counter, [opened]).when(new Increment('c-1', 3)).then([new Incremented(3, 4)]));
    expect(err.message).toContain('Incremented');
  });

  it('fails for an event of another type with the same fields', async () => {
    await failure(given(Counter, [opened]).when(new Increment('c-1', 3)).then([new Decremented(3, 3)]));
  });

  it('fails for a plain object with the right fields but no event type', async () => {
    await failure(given(Counter, [opened]).when(new Increment('c-1', 3)).then([{ by: 3, total: 3 }]));
  });

  it('fails when events are missing, extra, or in another order', async () => {
    const twice = () => given(Counter, [opened]).when(new Increment('c-1', 1, 2));
    await twice().then([new Incremented(1, 1), new Incremented(1, 2)]);
    await failure(twice().then([new Incremented(1, 1)]));
    await failure(twice().then([new Incremented(1, 1), new Incremented(1, 2), new Incremented(1, 3)]));
    await failure(twice().then([new Incremented(1, 2), new Incremented(1, 1)]));
    await failure(twice().then([]));
  });

  it('fails with [] when the command stored events', async () => {
    await failure(given(Counter, [opened]).when(new Increment('c-1', 1)).then([]));
  });

  it('fails when the command fails instead, naming the error', async () => {
    const err = await failure(given(Counter, [opened, new Closed()]).when(new Increment('c-1', 1)).then([new Incremented(1, 1)]));
    expect(err.message).toContain('InvalidStateError');
  });

  it('does not count the past events as stored by the command', async () => {
    await failure(given(Counter, [opened]).when(new Increment('c-1', 1)).then([opened, new Incremented(1, 1)]));
  });
});

describe('given(...).when(...).then(ErrorClass)', () => {
  it.each([
    ['AggregateNotFoundError for a mutation of an aggregate without events', [], new Increment('c-1', 1), AggregateNotFoundError],
    ['AggregateAlreadyExistsError for a creation of one that has events', [opened], new Open('c-1', 'bob'), AggregateAlreadyExistsError],
    ['CommandValidationError for invalid input', [], new Open('c-1', ''), CommandValidationError],
    ['InvalidStateError for a command not allowed in the state', [opened, new Closed()], new Close('c-1'), InvalidStateError],
    ['CommandRejectedError for a rejecting evaluation', [opened], new Increment('c-1', 101), CommandRejectedError],
  ] as const)('passes with %s', async (_what, past, command, errorClass) => {
    const outcome = await given(Counter, [...past])
      .when(command as Command<Counter>)
      .then(errorClass);
    expect('error' in outcome && outcome.error).toBeInstanceOf(errorClass);
  });

  it('passes for a base class of the error raised', async () => {
    await given(Counter, [opened, new Closed()]).when(new Close('c-1')).then(CommandError);
    await given(Counter).when(new Close('c-1')).then(NotFoundError);
    await given(Counter).when(new Close('c-1')).then(Error);
  });

  it('fails for an error class that is not the one raised (nor a base of it)', async () => {
    const err = await failure(given(Counter, [opened, new Closed()]).when(new Close('c-1')).then(CommandValidationError));
    expect(err.message).toContain('CommandValidationError');
    expect(err.message).toContain('InvalidStateError');
    // A sibling subclass of the same base does not match either.
    await failure(given(Counter).when(new Close('c-1')).then(AggregateAlreadyExistsError));
  });

  it('fails for a subclass of the error raised', async () => {
    class SpecialStateError extends InvalidStateError {}
    await failure(given(Counter, [opened, new Closed()]).when(new Close('c-1')).then(SpecialStateError));
  });

  it('fails when the command succeeds, naming the events it stored', async () => {
    const err = await failure(given(Counter, [opened]).when(new Close('c-1')).then(InvalidStateError));
    expect(err.message).toContain('Closed');
  });

  it('fails when the command skips', async () => {
    await failure(given(Counter, [opened]).when(new Increment('c-1', 0)).then(CommandRejectedError));
  });

  it('reports a failure other than a refusal as the error it is', async () => {
    // No @On handler for the emitted event: the repository fails; expecting events is wrong, expecting Error is right.
    await failure(given(Counter, [opened]).when(new EmitUnhandled('c-1')).then([new Unhandled()]));
    await given(Counter, [opened]).when(new EmitUnhandled('c-1')).then(Error);
  });
});

describe('given(...).when(...).outcome()', () => {
  it('gives { version, events } with the events rebuilt as their classes', async () => {
    const outcome: ScenarioOutcome = await given(Counter, [opened, new Incremented(1, 1)]).when(new Increment('c-1', 2, 2)).outcome();
    expect(outcome).toEqual({ version: 4, events: [new Incremented(2, 3), new Incremented(2, 5)] });
    if (!('events' in outcome)) throw new Error('expected events');
    expect(outcome.events[0]).toBeInstanceOf(Incremented);
  });

  it('gives the current version and no events for a skip', async () => {
    expect(await given(Counter, [opened, new Incremented(4, 4)]).when(new Increment('c-1', 0)).outcome()).toEqual({ version: 2, events: [] });
  });

  it('gives { error } instead of rejecting when the command fails', async () => {
    const outcome = await given(Counter, [opened]).when(new Increment('c-1', 1000)).outcome();
    expect(outcome).not.toHaveProperty('events');
    expect('error' in outcome && outcome.error).toBeInstanceOf(CommandRejectedError);
    expect((outcome as { error: CommandRejectedError }).error.reason).toBe('a counter stops at 100');
  });

  it('runs each scenario on its own store', async () => {
    await given(Counter).when(new Open('c-1', 'ann')).then([opened]);
    // Had the first scenario's stream survived, this creation would fail with AggregateAlreadyExistsError.
    await given(Counter).when(new Open('c-1', 'bob')).then([new Opened('bob')]);
  });
});

describe('await given(...).when(...) from plain JavaScript (no then, no outcome())', () => {
  // TypeScript refuses the bare await; JavaScript calls then(resolve, reject), which must give the outcome.
  const bare = (scenario: unknown) => scenario as PromiseLike<ScenarioOutcome>;

  it('gives the outcome of a command that succeeds, without asserting anything', async () => {
    expect(await bare(given(Counter, [opened]).when(new Increment('c-1', 4)))).toEqual({ version: 2, events: [new Incremented(4, 4)] });
  });

  it('gives { error } for a command that fails, without rejecting', async () => {
    const outcome = await bare(given(Counter).when(new Close('c-1')));
    expect('error' in outcome && outcome.error).toBeInstanceOf(AggregateNotFoundError);
  });
});

describe('given(..., { serializer })', () => {
  it('stores the past and new events through the serializer given', async () => {
    const seen: string[] = [];
    const json = new JsonEventSerializer();
    const serializer = {
      serialize(envelope: EventEnvelope) {
        seen.push(`${envelope.type}@${envelope.version}`);
        return json.serialize(envelope);
      },
      deserialize: (data: Uint8Array) => json.deserialize(data),
    };
    await given(Counter, [opened], { serializer }).when(new Increment('c-1', 1)).then([new Incremented(1, 1)]);
    expect(seen).toEqual(['Opened@1', 'Incremented@2']);
  });
});

describe('given(...) with an aggregate id the store refuses', () => {
  it('reports the ValidationError as the outcome, like any other refusal', async () => {
    await given(Counter, [opened]).when(new Increment('', 1)).then(ValidationError);
  });
});
