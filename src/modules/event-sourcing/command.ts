import type { AggregateRoot } from './aggregate-root.js';

/** Whether a command starts a new aggregate (version 0) or changes an existing one (version > 0). */
export type Lifecycle = 'create' | 'mutate';

/**
 * What `evaluate` decides: proceed (`undefined` or `'proceed'`), `'skip'` (an idempotent no-op: nothing is
 * written and the current version is returned), or `{ reject: reason }` (a `CommandRejectedError`).
 */
export type Evaluation = void | 'proceed' | 'skip' | { reject: string };

/**
 * A request to change one aggregate. Subclass it per command: name the aggregate, say whether it creates
 * or mutates, and emit the events (instances of the classes the aggregate has `@On` handlers for).
 *
 * @example
 * export class Deposit extends Command<Account> {
 *   readonly lifecycle = 'mutate';
 *   readonly allowedStates = ['open'];
 *   constructor(readonly aggregateId: string, readonly amount: number) { super(); }
 *   validate() { return this.amount > 0 ? [] : ['amount must be positive']; }
 *   emit() { return new Deposited(this.amount); }
 * }
 */
export abstract class Command<A extends AggregateRoot> {
  /** The aggregate the command is for. */
  abstract readonly aggregateId: string;
  abstract readonly lifecycle: Lifecycle;
  /** Who issued the command; stored with each event. Default `anonymous`. */
  actor?: string;
  /** The states (`AggregateRoot.currentState()`) the command is allowed in; absent: any. */
  readonly allowedStates?: readonly string[];

  /** Problems with the command's own input; any makes it fail with `CommandValidationError`. */
  validate(): readonly string[] {
    return [];
  }

  /** Decides, against the current state, whether to proceed, skip or reject. */
  evaluate(_aggregate: A): Evaluation {
    return undefined;
  }

  /** The events the command produces, in order. */
  abstract emit(aggregate: A): object | readonly object[];
}
