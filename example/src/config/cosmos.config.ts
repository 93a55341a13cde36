import { createCosmosConfig } from 'nest-cosmos-eventstore/config';

/**
 * The library's `cosmos` namespace (`CosmosModule` options from `COSMOS_*`), where a missing `COSMOS_ENDPOINT`
 * means an embedded in-memory server: the service runs out of the box for local development.
 */
export const cosmosConfig = createCosmosConfig({ embeddedWhenNoEndpoint: true });
