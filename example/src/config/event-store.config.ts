import { registerAs } from '@nestjs/config';
import { readEnv, type EnvReader } from './env-reader.js';

/** Cosmos DB stores an item's `ttl` as a 32-bit signed integer of seconds. */
const MAX_TTL_SECONDS = 2_147_483_647;

/** Event store settings. */
export interface EventStoreConfig {
  /** `EVENT_TTL_SECONDS`: expiry of events that carry none of their own; absent or 0: they never expire. */
  eventTtlSeconds?: number;
}

/** Reads `EVENT_TTL_SECONDS`, recording a problem on `env` when it is invalid. */
export function readEventStoreConfig(env: EnvReader): EventStoreConfig {
  const eventTtlSeconds = env.integer('EVENT_TTL_SECONDS', { min: 0, max: MAX_TTL_SECONDS });
  return eventTtlSeconds === undefined ? {} : { eventTtlSeconds };
}

/** The event store settings under the `eventStore` namespace; inject with `@Inject(eventStoreConfig.KEY)`. */
export const eventStoreConfig = registerAs('eventStore', (): EventStoreConfig => readEnv(process.env, readEventStoreConfig));
