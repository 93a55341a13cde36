import { registerAs } from '@nestjs/config';
import type { CosmosModuleOptions } from '../modules/cosmos/index.js';
import { readEnv } from './env-reader.js';
import { readCosmosEnv, type CosmosEnvOptions } from './cosmos.env.js';

export { DEFAULT_DATABASE_ID, readCosmosEnv, type CosmosEnvOptions } from './cosmos.env.js';

/**
 * A `registerAs` namespace `cosmos` of `CosmosModule` options from the environment (see `readCosmosEnv`),
 * validated when the namespace is loaded: a bad variable fails the start with one line naming it.
 *
 * @example
 * // Local development: without COSMOS_ENDPOINT, an embedded in-memory server.
 * export const cosmosConfig = createCosmosConfig({ embeddedWhenNoEndpoint: true });
 */
export function createCosmosConfig(options: CosmosEnvOptions = {}) {
  return registerAs('cosmos', (): CosmosModuleOptions => readEnv(process.env, (env) => readCosmosEnv(env, options)));
}

/**
 * `CosmosModule` options from `COSMOS_*` (`COSMOS_ENDPOINT` required), as a `registerAs` namespace.
 *
 * @example
 * CosmosModule.forRootAsync(cosmosConfig.asProvider())
 */
export const cosmosConfig = createCosmosConfig();
