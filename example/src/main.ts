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
  // forceCloseConnections: on shutdown, keep-alive and half-sent connections are closed rather than waited
  // for, or one idle client would keep a stopping service alive until a supervisor's SIGKILL.
  const app = await NestFactory.create<NestExpressApplication>(AppModule, {
    abortOnError: false,
    logger: serviceLogger,
    forceCloseConnections: true,
  });
  configureApp(app);
  // On SIGINT/SIGTERM Nest closes the server and runs the shutdown hooks (the Cosmos client is disposed,
  // the embedded server closed), then exits 0 instead of re-raising the signal.
  app.enableShutdownHooks(['SIGINT', 'SIGTERM'], { useProcessExit: true });
  await app.listen(appSettings.port);
  serviceLogger.starting = false;
  logger.log(`listening on http://localhost:${appSettings.port}`);
}

bootstrap().catch((err: unknown) => {
  logger.error(`start-up failed: ${describeStartupFailure(err, process.env)}`);
  // An embedded server started before the failure would keep the process alive: exit explicitly.
  process.exit(1);
});
