import { Logger } from '@nestjs/common';
import { registerAs } from '@nestjs/config';
import {
  DEFAULT_AGGREGATES_CONTAINER,
  DEFAULT_EVENTS_CONTAINER,
  DEFAULT_STARTUP_TIMEOUT_MS,
  type CosmosModuleOptions,
} from 'nest-cosmos-eventstore';
import { readEnv, type EnvReader } from './env-reader.js';

/** Database id used when `COSMOS_DATABASE` is not set. */
export const DEFAULT_DATABASE_ID = 'eventstore';

/** Where the service keeps its data, from `COSMOS_*`. */
export interface CosmosConfig {
  /** `COSMOS_ENDPOINT`; absent: the service starts an embedded server and keeps its data in memory only. */
  endpoint?: string;
  /** `COSMOS_KEY`; absent: `DefaultAzureCredential` (Microsoft Entra ID). A secret: never log it. */
  key?: string;
  /** `COSMOS_DATABASE`, default `eventstore`. */
  databaseId: string;
  /** `COSMOS_EVENTS_CONTAINER`, default `events`. */
  eventsContainerId: string;
  /** `COSMOS_AGGREGATES_CONTAINER`, default `aggregates`. */
  aggregatesContainerId: string;
  /**
   * `COSMOS_STARTUP_TIMEOUT_SECONDS`, 1 to 600, default 15: how long start-up retries transient faults
   * of Cosmos DB before it gives up, naming the cause.
   */
  startupTimeoutSeconds: number;
}

/** Longest start-up wait `COSMOS_STARTUP_TIMEOUT_SECONDS` accepts: ten minutes. */
const MAX_STARTUP_TIMEOUT_SECONDS = 600;

/** Reads the `COSMOS_*` variables, recording every problem on `env`. */
export function readCosmosConfig(env: EnvReader): CosmosConfig {
  const endpoint = env.url('COSMOS_ENDPOINT');
  // The key first: the ids after it are refused when they hold its value.
  const key = env.base64Secret('COSMOS_KEY');
  const config: CosmosConfig = {
    databaseId: env.resourceId('COSMOS_DATABASE') ?? DEFAULT_DATABASE_ID,
    eventsContainerId: env.resourceId('COSMOS_EVENTS_CONTAINER') ?? DEFAULT_EVENTS_CONTAINER,
    aggregatesContainerId: env.resourceId('COSMOS_AGGREGATES_CONTAINER') ?? DEFAULT_AGGREGATES_CONTAINER,
    startupTimeoutSeconds:
      env.integer('COSMOS_STARTUP_TIMEOUT_SECONDS', { min: 1, max: MAX_STARTUP_TIMEOUT_SECONDS }) ??
      DEFAULT_STARTUP_TIMEOUT_MS / 1000,
  };
  if (endpoint !== undefined && key === undefined && !env.isSet('COSMOS_KEY') && new URL(endpoint).protocol !== 'https:') {
    // Microsoft Entra ID tokens are sent over TLS only: every request would be refused by the SDK.
    env.problem(
      'COSMOS_ENDPOINT',
      'is a plain-HTTP URL, and signing in without COSMOS_KEY (Microsoft Entra ID) needs https: give an https ' +
        'endpoint, or set COSMOS_KEY (the emulator has a well-known key)',
    );
  }
  if (key !== undefined && !env.isSet('COSMOS_ENDPOINT')) {
    // Without an endpoint the service would run on the in-memory server and ignore the key: surely a mistake.
    env.problem('COSMOS_KEY', 'is set but COSMOS_ENDPOINT is not: set COSMOS_ENDPOINT to the account the key belongs to');
  }
  if (endpoint !== undefined) config.endpoint = endpoint;
  if (key !== undefined) config.key = key;
  return config;
}

/**
 * The Cosmos DB settings under the `cosmos` namespace; inject with `@Inject(cosmosConfig.KEY)` and type as
 * `ConfigType<typeof cosmosConfig>`.
 */
export const cosmosConfig = registerAs('cosmos', (): CosmosConfig => readEnv(process.env, readCosmosConfig));

/**
 * The `CosmosModule` options of the service: the configured account, or without `COSMOS_ENDPOINT` an
 * embedded in-memory server the module starts and closes (`embeddedWhenNoEndpoint`).
 */
export function cosmosModuleOptions(config: CosmosConfig): CosmosModuleOptions {
  const { endpoint, key, databaseId, eventsContainerId, aggregatesContainerId, startupTimeoutSeconds } = config;
  if (endpoint === undefined) {
    new Logger('CosmosAccount').log('COSMOS_ENDPOINT is not set: the service runs on an embedded Cosmos DB server');
  }
  return {
    ...(endpoint === undefined ? {} : { endpoint }),
    ...(key === undefined ? {} : { key }),
    databaseId,
    eventsContainerId,
    aggregatesContainerId,
    startupTimeoutMs: startupTimeoutSeconds * 1000,
    embeddedWhenNoEndpoint: true,
  };
}
