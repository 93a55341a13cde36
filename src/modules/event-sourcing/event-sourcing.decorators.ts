import { Inject } from '@nestjs/common';
import type { AggregateRoot } from './aggregate-root.js';
import type { AggregateClass } from './repository.js';
import { getRepositoryToken } from './event-sourcing.constants.js';

/**
 * Injects the `Repository<A>` that `EventSourcingModule.forFeature([A])` registered.
 *
 * @example
 * constructor(@InjectRepository(Order) private readonly orders: Repository<Order>) {}
 */
export const InjectRepository = <A extends AggregateRoot>(aggregateClass: AggregateClass<A>) =>
  Inject(getRepositoryToken(aggregateClass));
