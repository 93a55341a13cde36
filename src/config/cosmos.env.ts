import {
  DEFAULT_AGGREGATES_CONTAINER,
  DEFAULT_EVENTS_CONTAINER,
  DEFAULT_STARTUP_TIMEOUT_MS,
  type CosmosModuleOptions,
} from '../modules/cosmos/index.js';
import { envSchemas, type EnvReader } from './env-reader.js';

/** Database id used when `COSMOS_DATABASE` is not set. */
export const DEFAULT_DATABASE_ID = 'eventstore';

/** Longest start-up wait `COSMOS_STARTUP_TIMEOUT_SECONDS` accepts: ten minutes. */
const MAX_STARTUP_TIMEOUT_SECONDS = 600;

/** How the `COSMOS_*` variables are read. */
export interface CosmosEnvOptions {
  /**
   * Without `COSMOS_ENDPOINT`, run on an embedded in-memory server (`CosmosModule`'s `embeddedWhenNoEndpoint`;
   * needs the optional peer @vercel/cosmosdb-server): for local development. Default `false`: `COSMOS_ENDPOINT`
   * is required.
   */
  embeddedWhenNoEndpoint?: boolean;
}

/**
 * Reads `COSMOS_ENDPOINT`, `COSMOS_KEY` (absent: `DefaultAzureCredential`), `COSMOS_DATABASE` (default
 * `eventstore`), `COSMOS_EVENTS_CONTAINER`, `COSMOS_AGGREGATES_CONTAINER` and `COSMOS_STARTUP_TIMEOUT_SECONDS`
 * (1 to 600, default 15) into `CosmosModule` options, recording every problem on `env`.
 */
export function readCosmosEnv(env: EnvReader, options: CosmosEnvOptions = {}): CosmosModuleOptions {
  const endpoint = env.read('COSMOS_ENDPOINT', envSchemas.url());
  // The key first: the ids after it are refused when they hold its value.
  const key = env.read('COSMOS_KEY', envSchemas.base64Secret());
  const startupTimeoutSeconds =
    env.read('COSMOS_STARTUP_TIMEOUT_SECONDS', envSchemas.integer({ min: 1, max: MAX_STARTUP_TIMEOUT_SECONDS })) ??
    DEFAULT_STARTUP_TIMEOUT_MS / 1000;
  const config: CosmosModuleOptions = {
    databaseId: env.read('COSMOS_DATABASE', envSchemas.resourceId()) ?? DEFAULT_DATABASE_ID,
    eventsContainerId: env.read('COSMOS_EVENTS_CONTAINER', envSchemas.resourceId()) ?? DEFAULT_EVENTS_CONTAINER,
    aggregatesContainerId: env.read('COSMOS_AGGREGATES_CONTAINER', envSchemas.resourceId()) ?? DEFAULT_AGGREGATES_CONTAINER,
    startupTimeoutMs: startupTimeoutSeconds * 1000,
  };
  if (endpoint !== undefined && key === undefined && !env.isSet('COSMOS_KEY') && new URL(endpoint).protocol !== 'https:') {
    // Microsoft Entra ID tokens are sent over TLS only: every request would be refused by the SDK.
    env.problem(
      'COSMOS_ENDPOINT',
      'is a plain-HTTP URL, and signing in without COSMOS_KEY (Microsoft Entra ID) needs https: give an https ' +
        'endpoint, or set COSMOS_KEY (the emulator has a well-known key)',
    );
  }
  if (!env.isSet('COSMOS_ENDPOINT')) {
    if (options.embeddedWhenNoEndpoint !== true) {
      env.problem('COSMOS_ENDPOINT', `is required: the account URL, such as https://my-account.documents.azure.com:443/`);
    } else if (key !== undefined) {
      // Without an endpoint the application would run on the embedded server and ignore the key: surely a mistake.
      env.problem('COSMOS_KEY', 'is set but COSMOS_ENDPOINT is not: set COSMOS_ENDPOINT to the account the key belongs to');
    }
  }
  if (endpoint !== undefined) config.endpoint = endpoint;
  if (key !== undefined) config.key = key;
  if (options.embeddedWhenNoEndpoint === true) config.embeddedWhenNoEndpoint = true;
  return config;
}
