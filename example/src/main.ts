/**
 * The HTTP service: `npm start`, or in production `node example/dist/main.js` (both after `npm run build`,
 * which `npm install` runs). Configuration comes from the environment (see config/); without
 * COSMOS_ENDPOINT the data lives in an embedded in-memory server.
 */
import 'reflect-metadata';
import './telemetry.js';
import { ConsoleLogger, Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { loadServiceConfig } from './config/env.validation.js';
import { checkPortAvailable } from './config/port-check.js';
import { describeStartupFailure } from './config/startup-failure.js';
import { InFlightRequests, stopGracefully } from './http/graceful-shutdown.js';

/**
 * Nest's console logger, but for the whole dump of a start-up failure that Nest's ExceptionHandler prints
 * (60 lines and more of an SDK error's diagnostics): `bootstrap` reports that failure itself, in one line.
 */
class ServiceLogger extends ConsoleLogger {
  starting = true;

  override error(message: unknown, ...rest: unknown[]): void {
    if (this.starting && rest.at(-1) === 'ExceptionHandler') return;
    super.error(message, ...(rest as [string?]));
  }
}

const serviceLogger = new ServiceLogger();
Logger.overrideLogger(serviceLogger);
const logger = new Logger('Main');

async function bootstrap(): Promise<void> {
  // Validated before the application module is loaded: its ConfigModule.forRoot() validates at import time,
  // where a failure would surface as an unhandled rejection rather than this one-line message.
  const { app: appSettings } = loadServiceConfig(process.env);
  // Before anything starts (Cosmos DB, the subscribers): a taken PORT is named at once.
  await checkPortAvailable(appSettings.port);
  const { AppModule, configureApp } = await import('./app.module.js');
  // abortOnError false: a failure reaches the catch below (one clear line, exit code 1) instead of Nest's exit.
  const app = await NestFactory.create<NestExpressApplication>(AppModule, { abortOnError: false, logger: serviceLogger });
  configureApp(app);
  // On SIGINT/SIGTERM: no new connections, idle keep-alive ones closed at once, the requests in flight
  // answered (for at most SHUTDOWN_DRAIN_SECONDS); only then the shutdown hooks (the subscribers stop, the
  // Cosmos client is disposed, the embedded server closed), then exit 0.
  const requests = new InFlightRequests(app.getHttpServer());
  const shutdown = new Logger('Shutdown');
  stopGracefully(app, requests, { drainMs: appSettings.shutdownDrainSeconds * 1000, log: (message) => shutdown.log(message) });
  await app.listen(appSettings.port);
  serviceLogger.starting = false;
  logger.log(`listening on http://localhost:${appSettings.port}`);
}

bootstrap().catch((err: unknown) => {
  logger.error(`start-up failed: ${describeStartupFailure(err, process.env)}`);
  // An embedded server started before the failure would keep the process alive: exit explicitly.
  process.exit(1);
});
