/** The `CosmosClient` the module created (disposed on application shutdown). */
export const COSMOS_CLIENT = Symbol('COSMOS_CLIENT');
/** The @azure/cosmos `Container` of the events (partition key `/a`). */
export const EVENTS_CONTAINER = Symbol('EVENTS_CONTAINER');
/** The @azure/cosmos `Container` of the materialized aggregates (partition key `/pk`). */
export const AGGREGATES_CONTAINER = Symbol('AGGREGATES_CONTAINER');
