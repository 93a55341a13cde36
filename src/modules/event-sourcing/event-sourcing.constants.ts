import type { AggregateRoot } from './aggregate-root.js';
import type { AggregateClass } from './repository.js';

/** @internal `EventSourcingModuleOptions`. */
export const EVENT_SOURCING_OPTIONS = Symbol('EVENT_SOURCING_OPTIONS');

const repositoryTokens = new WeakMap<AggregateClass<AggregateRoot>, symbol>();

/** The injection token of `AggregateRepository<A>` for an aggregate class (what `@InjectAggregateRepository(A)` injects). */
export function getAggregateRepositoryToken<A extends AggregateRoot>(aggregateClass: AggregateClass<A>): symbol {
  let token = repositoryTokens.get(aggregateClass);
  if (!token) {
    token = Symbol(`AggregateRepository<${aggregateClass.name}>`);
    repositoryTokens.set(aggregateClass, token);
  }
  return token;
}
