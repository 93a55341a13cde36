import { Module } from '@nestjs/common';
import { isUtf8 } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ConfigModule } from '@nestjs/config';
import { APP_GUARD, HttpAdapterHost } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { eventStoreConfig, subscriptionsConfig } from 'nest-cosmos-eventstore/config';
import { cosmosConfig } from './config/cosmos.config.js';
import { configLoaders, validateEnv } from './config/env.validation.js';
import { CosmosModule } from 'nest-cosmos-eventstore';
import { EventStoreModule } from 'nest-cosmos-eventstore';
import { AdminTokenGuard, StoreApiModule } from './modules/store-api/index.js';
import { OrdersModule } from './modules/orders/index.js';
import { answerBodyRefusal, answerUndecodablePath, PREFIX as PROTOSOURCE_ROUTES, ProtosourceOrdersModule } from './modules/protosource-orders/index.js';
import { SubscriptionsModule } from 'nest-cosmos-eventstore';
import { OrderStatsModule } from './modules/order-stats/index.js';
import { SubscriptionsAdminModule } from './modules/subscriptions-admin/index.js';
import { answerClientErrors } from './http/client-errors.js';
import { actorOf } from './http/request-input.js';
import { HttpExceptionFilter } from './http/http-exception.filter.js';
import { jsonBodiesOnly } from './http/json-bodies-only.js';
import { nameUndecodableParams } from './http/undecodable-path.js';
import { methodNotAllowed, type RouteLayer } from './http/method-not-allowed.js';
import { DOCS_PATH, OPENAPI_JSON_PATH, setupOpenApi } from './http/openapi.js';

/** Largest JSON request body: a few events near Cosmos DB's 2 MB item limit (express's default is 100 kB). */
export const MAX_REQUEST_BODY = '16mb';

/**
 * The HTTP service: configuration validated from the environment, Cosmos DB (or the embedded server), the
 * event store, its HTTP API, the orders example domain and its statistics (kept by a change feed
 * subscription). Run it through `configureApp` so every entry point parses requests alike.
 */
@Module({
  imports: [
    ConfigModule.forRoot({
      isGlobal: true,
      // The environment only, as documented; Node's --env-file covers .env files.
      ignoreEnvFile: true,
      validate: validateEnv,
      load: configLoaders,
    }),
    // Without COSMOS_ENDPOINT, the module starts an embedded in-memory server and closes it on shutdown.
    CosmosModule.forRootAsync(cosmosConfig.asProvider()),
    // Global: StoreApiModule (and the domain modules to come) inject the store tokens without re-importing.
    EventStoreModule.forRootAsync({ ...eventStoreConfig.asProvider(), isGlobal: true }),
    SubscriptionsModule.forRootAsync(subscriptionsConfig.asProvider()),
    StoreApiModule,
    OrdersModule,
    ProtosourceOrdersModule,
    OrderStatsModule,
    SubscriptionsAdminModule,
  ],
  // ADMIN_TOKEN over every @AdminEndpoint() route of the service.
  providers: [{ provide: APP_GUARD, useClass: AdminTokenGuard }],
})
export class AppModule {}

/** Set by the JSON parser's `verify` on a request whose UTF-8 body holds invalid bytes. */
const INVALID_UTF8 = Symbol('invalid UTF-8 body');

/**
 * body-parser decodes a UTF-8 body leniently, so invalid bytes would be stored as U+FFFD (`zo\xebl` became
 * `zo\ufffdl`): such a body is marked while it is parsed, and answered 400 right after, as `x-actor` is.
 * Other charsets are body-parser's to decode.
 */
function markInvalidUtf8(req: object, _res: unknown, buf: Buffer, encoding: string): void {
  if (encoding.toLowerCase() === 'utf-8' && !isUtf8(buf)) (req as Record<symbol, boolean>)[INVALID_UTF8] = true;
}

function refuseInvalidUtf8(req: IncomingMessage, res: ServerResponse, next: () => void): void {
  if (!(req as unknown as Record<symbol, boolean>)[INVALID_UTF8]) return next();
  // protosource's routes answer in their own shape (CMD_UNMARSHAL), as for a body protobuf cannot decode.
  if (answerBodyRefusal(req, res, 400, 'the body is not valid UTF-8')) return;
  const body = JSON.stringify({ statusCode: 400, error: 'Bad Request', message: 'the body is not valid UTF-8', field: 'body' });
  res.writeHead(400, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) }).end(body);
}

/**
 * A body that is not JSON at all (`nul`, `{"a":`) is a 400 naming `body`, as every other refusal of the
 * body, instead of the parser's bare "Unexpected end of JSON input". On protosource's routes, the parser's
 * refusals (that one, 413 too large, 415 an unsupported charset) are answered in their apierror shape.
 */
function explainMalformedJson(err: unknown, req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void {
  const { type, status } = (err ?? {}) as { type?: unknown; status?: unknown };
  const detail = err instanceof Error ? err.message : String(err);
  if ((typeof type === 'string' && type.startsWith('entity.')) || type === 'charset.unsupported' || type === 'encoding.unsupported') {
    const code = type === 'entity.parse.failed' ? 400 : typeof status === 'number' ? status : 400;
    if (answerBodyRefusal(req, res, code, code === 400 ? `not valid JSON (${detail})` : detail)) return;
  }
  if (type !== 'entity.parse.failed') return next(err);
  const body = JSON.stringify({ statusCode: 400, error: 'Bad Request', message: `body: is not valid JSON (${detail})`, field: 'body' });
  res.writeHead(400, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) }).end(body);
}

/**
 * The `x-actor` rules on every route, reads included (a request naming its actor badly is refused wherever
 * it goes, not only where the actor is stored). protosource's routes answer in their own error shape and
 * check the header themselves.
 */
function checkActorHeader(ownShapePrefixes: readonly string[]) {
  return (req: IncomingMessage, res: ServerResponse, next: () => void): void => {
    if (ownShapePrefixes.some((prefix) => req.url?.startsWith(prefix))) return next();
    try {
      actorOf(req);
    } catch (err) {
      const body = JSON.stringify({ statusCode: 400, error: 'Bad Request', message: (err as Error).message, field: 'x-actor' });
      res.writeHead(400, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) }).end(body);
      return;
    }
    next();
  };
}

/**
 * What every entry point (`main.ts`, the e2e tests) sets up before `init()`, so every request is parsed and
 * answered alike: no `x-powered-by` banner; 405 with `Allow` for a known path asked with another method;
 * JSON bodies only (415 otherwise), up to a limit large enough for events near the Cosmos DB item limit; the JSON error shape
 * `{ statusCode, error, message }` for every error, Nest's and express's own included, and for the
 * requests Node's parser refuses (431 headers too large).
 */
export function configureApp(app: NestExpressApplication): NestExpressApplication {
  app.disable('x-powered-by');
  // express 5's own router (`app.router`), whose route layers Nest fills on init().
  const express = app.getHttpAdapter().getInstance() as { router: { stack: RouteLayer[] } };
  app.use(methodNotAllowed(() => express.router.stack));
  // `GET /orders/%FF`: a 400 naming the parameter (the router's own says "Failed to decode param").
  app.use(nameUndecodableParams(() => express.router.stack, answerUndecodablePath));
  // Before every parser, Nest's default urlencoded one included: a form post never becomes a body.
  app.use(jsonBodiesOnly([`/${PROTOSOURCE_ROUTES}/`], answerBodyRefusal));
  // strict: false: any JSON value is parsed, so a body of `null`, `42` or `"str"` reaches the route, which
  // refuses it naming `body`, instead of body-parser's "Unexpected token 'n', "null" is not valid JSON".
  app.useBodyParser('json', { limit: MAX_REQUEST_BODY, verify: markInvalidUtf8, strict: false });
  app.use(refuseInvalidUtf8);
  app.use(explainMalformedJson);
  // The API's description is no request of the API: no actor to check there.
  app.use(checkActorHeader([`/${PROTOSOURCE_ROUTES}/`, OPENAPI_JSON_PATH, DOCS_PATH]));
  app.useGlobalFilters(new HttpExceptionFilter(app.get(HttpAdapterHost)));
  answerClientErrors(app.getHttpServer());
  // GET /openapi.json and Swagger UI at /docs, open to all (no ADMIN_TOKEN): they describe, never act.
  setupOpenApi(app);
  return app;
}
