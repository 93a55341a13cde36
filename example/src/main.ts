/**
 * The HTTP service: `npm start` (build, then `node dist/main.js`). Configuration comes from the environment
 * (see src/config); without COSMOS_ENDPOINT the data lives in an embedded in-memory server.
 */
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { loadServiceConfig } from './config/env.validation.js';
import { describeStartupFailure } from './config/startup-failure.js';

const logger = new Logger('Main');

async function bootstrap(): Promise<void> {
  // Validated before the application module is loaded: its ConfigModule.forRoot() validates at import time,
  // where a failure would surface as an unhandled rejection rather than this one-line message.
  const { app: appSettings } = loadServiceConfig(process.env);
  const { AppModule, configureApp } = await import('./app.module.js');
  // abortOnError false: a failure reaches the catch below (one clear line, exit code 1) instead of Nest's exit.
  const app = await NestFactory.create<NestExpressApplication>(AppModule, { abortOnError: false });
  configureApp(app);
  // On SIGINT/SIGTERM Nest closes the server and runs the shutdown hooks (the Cosmos client is disposed,
  // the embedded server closed), then exits 0 instead of re-raising the signal.
  app.enableShutdownHooks(['SIGINT', 'SIGTERM'], { useProcessExit: true });
  await app.listen(appSettings.port);
  logger.log(`listening on http://localhost:${appSettings.port}`);
}

bootstrap().catch((err: unknown) => {
  logger.error(`start-up failed: ${describeStartupFailure(err, process.env)}`);
  // An embedded server started before the failure would keep the process alive: exit explicitly.
  process.exit(1);
});
