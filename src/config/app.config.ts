import { registerAs } from '@nestjs/config';
import { readEnv, type EnvReader } from './env-reader.js';

/** HTTP port used when `PORT` is not set. */
export const DEFAULT_PORT = 3000;

/** Settings of the HTTP service itself. */
export interface AppConfig {
  /** `PORT`, 1 to 65535, default 3000. */
  port: number;
}

/** Reads `PORT`, recording a problem on `env` when it is invalid. */
export function readAppConfig(env: EnvReader): AppConfig {
  return { port: env.integer('PORT', { min: 1, max: 65_535 }) ?? DEFAULT_PORT };
}

/** The service settings under the `app` namespace; inject with `@Inject(appConfig.KEY)`. */
export const appConfig = registerAs('app', (): AppConfig => readEnv(process.env, readAppConfig));
