import type { AggregateKeys, Materializable } from '../event-store/index.js';
import { aggregateMetadata, keysFromDecorators } from './aggregate-metadata.js';

/**
 * Base class of event-sourced aggregates: the state, one `@On` handler per event type, and the keys of
 * its materialized document. Subclasses need a constructor without arguments (loads create a blank
 * instance and apply the stream to it).
 *
 * @example
 * @Aggregate({ snapshotEvery: 100 })
 * export class Account extends AggregateRoot {
 *   balance = 0;
 *   @On(Deposited) onDeposited(e: Deposited) { this.balance += e.amount; }
 * }
 */
export abstract class AggregateRoot implements Materializable {
  /** The aggregate's id, as the application knows it (the store namespaces it per type). */
  id = '';
  /** The version of the last event applied; 0: the aggregate does not exist yet. */
  version = 0;

  /** The state a command's `allowedStates` is checked against; override to expose one. */
  currentState(): string | undefined {
    return undefined;
  }

  /** Keys of the materialized document, from `@PartitionKey`, `@SortKey` and `@Gsi`. */
  keys(): AggregateKeys {
    return keysFromDecorators(this);
  }

  /** From `@Aggregate({ ttlSeconds })`: how long the materialized document lives. */
  get ttlSeconds(): number | undefined {
    return aggregateMetadata(this.constructor as abstract new () => object).options.ttlSeconds;
  }

  /**
   * Views saved beside the aggregate (in the aggregates container) after each command, each under its own
   * keys. Give each view the aggregate's `version`: a view is only replaced by a newer one.
   */
  projections(): Materializable[] {
    return [];
  }

  /**
   * Restores the state a snapshot stored (the aggregate's JSON). The default copies the fields over;
   * override when the state holds class instances, `Map`s or `Date`s.
   */
  restoreSnapshot(state: Record<string, unknown>): void {
    for (const [key, value] of Object.entries(state)) {
      // A getter a `toJSON` wrote out (a computed total, say) is derived state: nothing to restore.
      if (isReadOnlyAccessor(this, key)) continue;
      (this as Record<string, unknown>)[key] = value;
    }
  }
}

function isReadOnlyAccessor(object: object, key: string): boolean {
  for (let o: object | null = object; o; o = Object.getPrototypeOf(o)) {
    const descriptor = Object.getOwnPropertyDescriptor(o, key);
    if (descriptor) return descriptor.get !== undefined && descriptor.set === undefined;
  }
  return false;
}
