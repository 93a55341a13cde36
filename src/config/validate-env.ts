import type { CosmosModuleOptions } from '../modules/cosmos/index.js';
import type { EventStoreModuleOptions } from '../modules/event-store/index.js';
import type { SubscriptionsModuleOptions } from '../modules/subscriptions/index.js';
import { readCosmosEnv, type CosmosEnvOptions } from './cosmos.env.js';
import { readEnv, type Env } from './env-reader.js';
import { readEventStoreEnv } from './event-store.env.js';
import { readSubscriptionsEnv } from './subscriptions.env.js';

/** Every module's options the library reads from the environment. */
export interface LibraryEnv {
  cosmos: CosmosModuleOptions;
  eventStore: EventStoreModuleOptions;
  subscriptions: SubscriptionsModuleOptions;
}

/** Reads every variable of the library at once; throws one `EnvValidationError` naming each bad one. */
export function readLibraryEnv(env: Env, options: CosmosEnvOptions = {}): LibraryEnv {
  return readEnv(env, (reader) => ({
    cosmos: readCosmosEnv(reader, options),
    eventStore: readEventStoreEnv(reader),
    subscriptions: readSubscriptionsEnv(reader),
  }));
}

/**
 * For `ConfigModule.forRoot({ validate })`: fails the start on a bad variable, naming it, before any module
 * reads one. Returns the environment unchanged, since ConfigModule copies what `validate` returns into
 * `process.env` (defaults would leak there).
 *
 * @example
 * ConfigModule.forRoot({ validate: validateLibraryEnv, load: [cosmosConfig, eventStoreConfig, subscriptionsConfig] })
 */
export function validateLibraryEnv(env: Record<string, unknown>, options: CosmosEnvOptions = {}): Record<string, unknown> {
  readLibraryEnv(env as Env, options);
  return env;
}
