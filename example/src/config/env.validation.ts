import { appConfig, readAppConfig, type AppConfig } from './app.config.js';
import { cosmosConfig, readCosmosConfig, type CosmosConfig } from './cosmos.config.js';
import { eventStoreConfig, readEventStoreConfig, type EventStoreConfig } from './event-store.config.js';
import { readSubscriptionsConfig, subscriptionsConfig, type SubscriptionsConfig } from './subscriptions.config.js';
import { readEnv, type Env } from './env-reader.js';

/** Every setting of the service, validated. */
export interface ServiceConfig {
  app: AppConfig;
  cosmos: CosmosConfig;
  eventStore: EventStoreConfig;
  subscriptions: SubscriptionsConfig;
}

/**
 * Validates every variable the service reads and returns the settings; throws one `EnvValidationError`
 * naming each bad variable (and quoting no secret).
 */
export function loadServiceConfig(env: Env): ServiceConfig {
  return readEnv(env, (reader) => ({
    app: readAppConfig(reader),
    cosmos: readCosmosConfig(reader),
    eventStore: readEventStoreConfig(reader),
    subscriptions: readSubscriptionsConfig(reader),
  }));
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

/** The `load` list of `ConfigModule.forRoot`: one `registerAs` namespace per concern. */
export const configLoaders = [appConfig, cosmosConfig, eventStoreConfig, subscriptionsConfig];
