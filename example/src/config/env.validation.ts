import type { CosmosModuleOptions, EventStoreModuleOptions, SubscriptionsModuleOptions } from 'nest-cosmos-eventstore';
import {
  eventStoreConfig,
  readCosmosEnv,
  readEnv,
  readEventStoreEnv,
  readSubscriptionsEnv,
  subscriptionsConfig,
  type Env,
} from 'nest-cosmos-eventstore/config';
import { appConfig, readAppConfig, SERVICE_SECRETS, type AppConfig } from './app.config.js';
import { cosmosConfig } from './cosmos.config.js';

/** Every setting of the service, validated: its own and the library modules' options. */
export interface ServiceConfig {
  app: AppConfig;
  cosmos: CosmosModuleOptions;
  eventStore: EventStoreModuleOptions;
  subscriptions: SubscriptionsModuleOptions;
}

/**
 * Validates every variable the service reads and returns the settings; throws one `EnvValidationError`
 * naming each bad variable (and quoting no secret).
 */
export function loadServiceConfig(env: Env): ServiceConfig {
  return readEnv(
    env,
    (reader) => ({
      app: readAppConfig(reader),
      cosmos: readCosmosEnv(reader, { embeddedWhenNoEndpoint: true }),
      eventStore: readEventStoreEnv(reader),
      subscriptions: readSubscriptionsEnv(reader),
    }),
    SERVICE_SECRETS,
  );
}

/**
 * The `validate` hook of `ConfigModule.forRoot`: fails start-up on a bad variable. It returns the environment
 * unchanged, since ConfigModule copies what `validate` returns into `process.env` (defaults would leak there);
 * the typed settings come from the `registerAs` namespaces in `configLoaders`.
 */
export function validateEnv(env: Record<string, unknown>): Record<string, unknown> {
  loadServiceConfig(env as Env);
  return env;
}

/** The `load` list of `ConfigModule.forRoot`: one `registerAs` namespace per concern, the library's three and the app's. */
export const configLoaders = [appConfig, cosmosConfig, eventStoreConfig, subscriptionsConfig];
