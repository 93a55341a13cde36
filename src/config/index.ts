export { EnvReader, EnvValidationError, envSchemas, readEnv, SECRET_VARIABLES, type Env, type EnvProblem } from './env-reader.js';
export { cosmosConfig, createCosmosConfig, DEFAULT_DATABASE_ID, readCosmosEnv, type CosmosEnvOptions } from './cosmos.config.js';
export { eventStoreConfig, readEventStoreEnv } from './event-store.config.js';
export { readSubscriptionsEnv, subscriptionsConfig } from './subscriptions.config.js';
export { readLibraryEnv, validateLibraryEnv, type LibraryEnv } from './validate-env.js';
