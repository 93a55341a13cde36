import { registerAs } from '@nestjs/config';
import { DEFAULT_AGGREGATES_CONTAINER, DEFAULT_EVENTS_CONTAINER } from 'nest-cosmos-eventstore';
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
}

/** Reads the `COSMOS_*` variables, recording every problem on `env`. */
export function readCosmosConfig(env: EnvReader): CosmosConfig {
  const endpoint = env.url('COSMOS_ENDPOINT');
  // The key first: the ids after it are refused when they hold its value.
  const key = env.base64Secret('COSMOS_KEY');
  const config: CosmosConfig = {
    databaseId: env.resourceId('COSMOS_DATABASE') ?? DEFAULT_DATABASE_ID,
    eventsContainerId: env.resourceId('COSMOS_EVENTS_CONTAINER') ?? DEFAULT_EVENTS_CONTAINER,
    aggregatesContainerId: env.resourceId('COSMOS_AGGREGATES_CONTAINER') ?? DEFAULT_AGGREGATES_CONTAINER,
  };
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
