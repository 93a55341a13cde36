import { Inject } from '@nestjs/common';
import { AGGREGATES_CONTAINER, COSMOS_CLIENT, EVENTS_CONTAINER } from './cosmos.constants.js';

/** Injects the module's `CosmosClient`. */
export const InjectCosmosClient = (): ParameterDecorator & PropertyDecorator => Inject(COSMOS_CLIENT);
/** Injects the events `Container`. */
export const InjectEventsContainer = (): ParameterDecorator & PropertyDecorator => Inject(EVENTS_CONTAINER);
/** Injects the aggregates `Container`. */
export const InjectAggregatesContainer = (): ParameterDecorator & PropertyDecorator => Inject(AGGREGATES_CONTAINER);
