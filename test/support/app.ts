import type { LoggerService } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { Test } from '@nestjs/testing';

/** Every environment variable the service reads. */
const SERVICE_VARIABLES = [
  'SUBSCRIPTIONS_LEASE_SECONDS',
  'COSMOS_ENDPOINT',
  'COSMOS_KEY',
  'COSMOS_DATABASE',
  'COSMOS_EVENTS_CONTAINER',
  'COSMOS_AGGREGATES_CONTAINER',
  'COSMOS_STARTUP_TIMEOUT_SECONDS',
  'EVENT_TTL_SECONDS',
  'PORT',
  'COSMOS_LEASES_CONTAINER',
  'SUBSCRIPTIONS_INSTANCE_ID',
  'ADMIN_TOKEN',
];

/** Keeps every log line, to check what the service says (and never says). */
export class CapturingLogger implements LoggerService {
  readonly lines: Array<{ level: string; message: string }> = [];
  log = (message: unknown) => this.push('log', message);
  warn = (message: unknown) => this.push('warn', message);
  error = (message: unknown, ...rest: unknown[]) => this.push('error', [message, ...rest].join(' '));
  debug = (message: unknown) => this.push('debug', message);
  verbose = (message: unknown) => this.push('verbose', message);

  get text(): string {
    return this.lines.map((l) => l.message).join('\n');
  }

  private push(level: string, message: unknown): void {
    this.lines.push({ level, message: String(message) });
  }
}

export interface ServiceUnderTest {
  app: NestExpressApplication;
  http: ReturnType<NestExpressApplication['getHttpServer']>;
  /** Closes the application and puts the environment back as it was. */
  close(): Promise<void>;
}

/**
 * Boots the real AppModule with exactly `env` as the service's variables, whatever the developer's shell
 * holds, as `main.ts` would (same body parser).
 */
export async function startService(env: Record<string, string>, logger: LoggerService): Promise<ServiceUnderTest> {
  const saved = new Map(SERVICE_VARIABLES.map((name) => [name, process.env[name]]));
  const restore = () => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  for (const name of SERVICE_VARIABLES) delete process.env[name];
  Object.assign(process.env, env);
  try {
    // Imported only now: ConfigModule.forRoot() reads the environment when app.module is evaluated.
    const { AppModule, configureApp } = await import('../../example/src/app.module.js');
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).setLogger(logger).compile();
    const app = configureApp(moduleRef.createNestApplication<NestExpressApplication>());
    await app.init();
    return {
      app,
      http: app.getHttpServer(),
      async close() {
        await app.close();
        restore();
      },
    };
  } catch (err) {
    restore();
    throw err;
  }
}
