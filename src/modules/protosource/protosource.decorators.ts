import { Inject } from '@nestjs/common';
import type { DescMessage } from '@bufbuild/protobuf';
import { getProtosourceRepositoryToken } from './protosource.constants.js';

/**
 * Injects the `ProtosourceRepository` that `ProtosourceModule.forFeature` registered for this aggregate.
 *
 * @example
 * constructor(@InjectProtosourceRepository(OrderSchema) private readonly orders: ProtosourceRepository<Order>) {}
 */
export const InjectProtosourceRepository = (schema: DescMessage): PropertyDecorator & ParameterDecorator =>
  Inject(getProtosourceRepositoryToken(schema));
