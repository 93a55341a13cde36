import { DEFAULT_AGGREGATES_CONTAINER, DEFAULT_EVENTS_CONTAINER } from '../modules/cosmos/index.js';
import { EnvValidationError, readEnv, type Env } from '../config/env-reader.js';
import { readCosmosEnv } from '../config/cosmos.env.js';
import { readSubscriptionsEnv } from '../config/subscriptions.env.js';

/**
 * Where the CLI works, from the same variables and with the same rules as the library's configuration
 * (`nest-cosmos-eventstore/config`): `COSMOS_ENDPOINT` (required), `COSMOS_KEY`, `COSMOS_DATABASE` and the
 * container ids.
 */
export interface CliConfig {
  /** `COSMOS_ENDPOINT` (required). */
  endpoint: string;
  /** `COSMOS_KEY`; absent: Microsoft Entra ID (`DefaultAzureCredential`). A secret: never printed. */
  key?: string;
  /** `COSMOS_DATABASE`, default `eventstore`. */
  databaseId: string;
  /** `COSMOS_EVENTS_CONTAINER`, default `events`. */
  eventsContainerId: string;
  /** `COSMOS_AGGREGATES_CONTAINER`, default `aggregates`. */
  aggregatesContainerId: string;
  /** `COSMOS_LEASES_CONTAINER`, default `leases`. */
  leasesContainerId: string;
}

/** A problem with the command line or the environment: exit code 2, nothing was sent. */
export class CliUsageError extends Error {}

/** Reads and checks the `COSMOS_*` variables; a `CliUsageError` naming every problem (never a value). */
export function readCliConfig(env: NodeJS.ProcessEnv): CliConfig {
  try {
    return readEnv(env as Env, (reader) => {
      const cosmos = readCosmosEnv(reader);
      const { leasesContainerId } = readSubscriptionsEnv(reader);
      const config: CliConfig = {
        endpoint: cosmos.endpoint ?? '',
        databaseId: cosmos.databaseId ?? 'eventstore',
        eventsContainerId: cosmos.eventsContainerId ?? DEFAULT_EVENTS_CONTAINER,
        aggregatesContainerId: cosmos.aggregatesContainerId ?? DEFAULT_AGGREGATES_CONTAINER,
        leasesContainerId,
      };
      if (cosmos.key !== undefined) config.key = cosmos.key;
      return config;
    });
  } catch (err) {
    if (err instanceof EnvValidationError) throw new CliUsageError(err.message);
    throw err;
  }
}
