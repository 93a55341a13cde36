import { registerAs } from '@nestjs/config';
import type { EventStoreModuleOptions } from '../modules/event-store/index.js';
import { readEnv } from './env-reader.js';
import { readEventStoreEnv } from './event-store.env.js';

export { readEventStoreEnv } from './event-store.env.js';

/**
 * `EventStoreModule` options from the environment, as the `registerAs` namespace `eventStore`.
 *
 * @example
 * EventStoreModule.forRootAsync(eventStoreConfig.asProvider())
 */
export const eventStoreConfig = registerAs('eventStore', (): EventStoreModuleOptions => readEnv(process.env, readEventStoreEnv));
