import { Inject } from '@nestjs/common';
import type { AggregateRoot } from './aggregate-root.js';
import type { AggregateClass } from './repository.js';
import { getAggregateRepositoryToken } from './event-sourcing.constants.js';

/**
 * Injects the `AggregateRepository<A>` that `EventSourcingModule.forFeature([A])` registered.
 *
 * @example
 * constructor(@InjectAggregateRepository(Order) private readonly orders: AggregateRepository<Order>) {}
 */
export const InjectAggregateRepository = <A extends AggregateRoot>(aggregateClass: AggregateClass<A>) =>
  Inject(getAggregateRepositoryToken(aggregateClass));
