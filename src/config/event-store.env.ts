import type { EventStoreModuleOptions } from '../modules/event-store/index.js';
import { envSchemas, type EnvReader } from './env-reader.js';

/** Cosmos DB stores an item's `ttl` as a 32-bit signed integer of seconds. */
const MAX_TTL_SECONDS = 2_147_483_647;

/** Reads `EVENT_TTL_SECONDS` (expiry of events that carry none of their own; absent or 0: never) into `EventStoreModule` options. */
export function readEventStoreEnv(env: EnvReader): EventStoreModuleOptions {
  const eventTtlSeconds = env.read('EVENT_TTL_SECONDS', envSchemas.integer({ min: 0, max: MAX_TTL_SECONDS }));
  return eventTtlSeconds === undefined ? {} : { eventTtlSeconds };
}
