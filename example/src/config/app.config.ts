import { registerAs } from '@nestjs/config';
import { envSchemas, readEnv, SECRET_VARIABLES, type EnvReader } from 'nest-cosmos-eventstore/config';

/** HTTP port used when `PORT` is not set. */
export const DEFAULT_PORT = 3000;

/** How long a stopping service waits for the requests in flight when `SHUTDOWN_DRAIN_SECONDS` is not set. */
export const DEFAULT_SHUTDOWN_DRAIN_SECONDS = 8;
/** The longest drain allowed: a supervisor's grace period (Kubernetes: 30 s) must cover it and the shutdown after it. */
export const MAX_SHUTDOWN_DRAIN_SECONDS = 120;

/** Shortest `ADMIN_TOKEN` accepted: long enough not to be guessed over HTTP. */
export const MIN_ADMIN_TOKEN_LENGTH = 32;

/** The secrets among the service's variables (the library's and `ADMIN_TOKEN`): never logged nor quoted. */
export const SERVICE_SECRETS: readonly string[] = [...SECRET_VARIABLES, 'ADMIN_TOKEN'];

/** Settings of the HTTP service itself. */
export interface AppConfig {
  /** `PORT`, 1 to 65535, default 3000. */
  port: number;
  /**
   * `ADMIN_TOKEN`: the bearer token the `/admin` endpoints require. Absent: they are open on the embedded
   * server and refused (403) on a configured account. A secret: never log it.
   */
  adminToken?: string;
  /**
   * `SHUTDOWN_DRAIN_SECONDS`, 0 to 120, default 8: on SIGTERM/SIGINT, how long the requests in flight may
   * take to finish before their connections are cut (the subscribers and Cosmos DB stop after that).
   */
  shutdownDrainSeconds: number;
}

/** Reads `PORT`, `ADMIN_TOKEN` and `SHUTDOWN_DRAIN_SECONDS`, recording a problem on `env` for each invalid one. */
export function readAppConfig(env: EnvReader): AppConfig {
  const config: AppConfig = {
    port: env.read('PORT', envSchemas.integer({ min: 1, max: 65_535 })) ?? DEFAULT_PORT,
    shutdownDrainSeconds:
      env.read('SHUTDOWN_DRAIN_SECONDS', envSchemas.integer({ min: 0, max: MAX_SHUTDOWN_DRAIN_SECONDS })) ?? DEFAULT_SHUTDOWN_DRAIN_SECONDS,
  };
  const adminToken = env.read('ADMIN_TOKEN', envSchemas.secret({ minLength: MIN_ADMIN_TOKEN_LENGTH }));
  if (adminToken !== undefined) config.adminToken = adminToken;
  return config;
}

/** The service settings under the `app` namespace; inject with `@Inject(appConfig.KEY)`. */
export const appConfig = registerAs('app', (): AppConfig => readEnv(process.env, readAppConfig, SERVICE_SECRETS));
