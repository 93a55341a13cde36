/*
 * The service's OpenAPI document (`GET /openapi.json`) and Swagger UI (`GET /docs`): open without the admin
 * token and whatever `x-actor` says; the document lists exactly the routes the application serves (read from
 * express's router, both ways), every operation describes its parameters and its error answers, and the
 * answers the service really gives to bad input and to another method are among those described.
 */
import { randomUUID } from 'node:crypto';
import { METHODS } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { errorBodySchema } from '../../src/index.js';
import { CapturingLogger, startService, type ServiceUnderTest } from '../support/app.js';

interface Operation {
  parameters?: Array<{ name: string; in: string; required?: boolean }>;
  requestBody?: { content: Record<string, unknown> };
  responses: Record<string, { content?: Record<string, { schema?: Schema }>; headers?: Record<string, unknown> }>;
}
interface Schema {
  $ref?: string;
  oneOf?: Schema[];
  required?: string[];
  properties?: Record<string, Schema>;
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
}

/** What express's router holds for one route, as much as this reads. */
interface Layer {
  route?: { path: string; methods: Record<string, boolean | undefined> };
  match(path: string): boolean;
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const PROTOSOURCE = '/example/app/order/v1';
const ADMIN_TOKEN = `token-${randomUUID()}`;

const logger = new CapturingLogger();
let service: ServiceUnderTest;
let http: ServiceUnderTest['http'];
let doc: Document;

beforeAll(async () => {
  // With ADMIN_TOKEN set: the admin routes are closed, the description must stay open.
  service = await startService({ COSMOS_DATABASE: `openapi-${randomUUID()}`, ADMIN_TOKEN }, logger);
  http = service.http;
  const res = await request(http).get('/openapi.json').expect(200).expect('Content-Type', /application\/json/);
  doc = res.body as Document;
});

afterAll(() => service?.close());

/**
 * `METHOD /path/{param}` of every route express serves, and apart the paths of the catch-all ones (Nest's
 * `@All()`: express registers them for every method Node knows).
 */
function routeLayers(): Layer[] {
  return (service.app.getHttpAdapter().getInstance() as { router: { stack: Layer[] } }).router.stack.filter((layer) => layer.route);
}

function servedRoutes(): { routes: Set<string>; catchAll: string[] } {
  const stack = routeLayers();
  const routes = new Set<string>();
  const catchAll: string[] = [];
  for (const { route } of stack) {
    if (!route) continue;
    // Express's `:name` to OpenAPI's `{name}`.
    const path = route.path.replace(/:(\w+)/g, '{$1}');
    const methods = Object.entries(route.methods)
      .filter(([, on]) => on)
      .map(([method]) => method.toUpperCase());
    if (isCatchAll(methods)) catchAll.push(path);
    else for (const method of methods) routes.add(`${method} ${path}`);
  }
  return { routes, catchAll };
}

function isCatchAll(methods: readonly string[]): boolean {
  return methods.includes('_ALL') || METHODS.every((method) => methods.includes(method));
}

/** `METHOD /path/{param}` of every operation the document describes. */
function describedRoutes(): Set<string> {
  const routes = new Set<string>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of Object.keys(item)) if (HTTP_METHODS.includes(method)) routes.add(`${method.toUpperCase()} ${path}`);
  }
  return routes;
}

function operations(): Array<[string, string, Operation]> {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => HTTP_METHODS.includes(method))
      .map(([method, op]): [string, string, Operation] => [method, path, op]),
  );
}

/** The schema `schema` points to, through `$ref`. */
function resolve(schema: Schema): Schema {
  if (schema.$ref === undefined) return schema;
  const name = schema.$ref.replace('#/components/schemas/', '');
  const target = doc.components.schemas[name];
  if (target === undefined) throw new Error(`dangling ${schema.$ref}`);
  return target;
}

/** Whether `body` has every property the (resolved) schema requires, for one of its alternatives. */
function hasRequired(schema: Schema, body: Record<string, unknown>): boolean {
  const resolved = resolve(schema);
  if (resolved.oneOf) return resolved.oneOf.some((alternative) => hasRequired(alternative, body));
  return (resolved.required ?? []).every((name) => name in body);
}

/** A concrete URL for a documented path: every `{param}` filled. */
function concrete(path: string): string {
  return path.replace(/\{(\w+)\}/g, (_, name: string) => `${name}-1`);
}

describe('the OpenAPI document', () => {
  it('is OpenAPI 3 JSON, with the library error body as a reusable schema', () => {
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.components.schemas.ErrorBody).toEqual(errorBodySchema);
    expect(doc.components.schemas['funinthecloud.protosource.apierror.v1.Error']).toMatchObject({
      properties: { code: { type: 'string' }, message: { type: 'string' }, detail: { type: 'string' } },
    });
  });

  it('lists every route the application serves, and only those', () => {
    const { routes } = servedRoutes();
    // The description's own routes are served beside the API, not part of it.
    const api = [...routes].filter((route) => !/^GET (\/docs|\/openapi\.json)/.test(route));
    expect(api.length).toBeGreaterThan(25);
    // Where the document lists a templated route path by path (protosource's `POST …/{command}` as
    // `POST …/create`, …), express's router says which of its routes a documented path reaches.
    const layers = routeLayers();
    const reached = (method: string, url: string): string | undefined => {
      const layer = layers.find((l) => l.route!.methods[method.toLowerCase()] && l.match(url));
      if (!layer) return undefined;
      const methods = Object.keys(layer.route!.methods).map((m) => m.toUpperCase());
      return isCatchAll(methods) ? 'the catch-all' : `${method.toUpperCase()} ${layer.route!.path.replace(/:(\w+)/g, '{$1}')}`;
    };
    const described = [...describedRoutes()];
    // Every documented operation is served by the route it describes (not by a fallback) ...
    const reachedByDocument = new Set(described.map((route) => reached(route.split(' ')[0], concrete(route.split(' ')[1]))));
    expect(described.filter((route) => reached(route.split(' ')[0], concrete(route.split(' ')[1])) === undefined)).toEqual([]);
    expect(reachedByDocument).not.toContain('the catch-all');
    // ... and every route served is documented.
    expect(api.filter((route) => !reachedByDocument.has(route))).toEqual([]);
    expect(described.filter((route) => route.includes('{command}'))).toEqual([]);
    expect(described).toEqual(expect.arrayContaining([`POST ${PROTOSOURCE}/create`, `POST ${PROTOSOURCE}/cancel`]));
    expect(routes).toContain('GET /openapi.json');
    expect(routes).toContain('GET /docs');
  });

  it("leaves out only protosource's fallback, whose 404 and 405 every protosource operation describes", () => {
    expect(servedRoutes().catchAll.sort()).toEqual([PROTOSOURCE, `${PROTOSOURCE}/*rest`]);
    const protosource = operations().filter(([, path]) => path.startsWith(PROTOSOURCE));
    expect(protosource.length).toBe(14);
    for (const [, , op] of protosource) expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['404', '405']));
  });

  it('describes every path parameter, a success and the error answers of every operation', () => {
    for (const [method, path, op] of operations()) {
      const where = `${method.toUpperCase()} ${path}`;
      for (const [, name] of path.matchAll(/\{(\w+)\}/g)) {
        expect({ where, parameter: op.parameters?.find((p) => p.name === name && p.in === 'path') }).toMatchObject({
          where,
          parameter: { required: true },
        });
      }
      const statuses = Object.keys(op.responses);
      expect({ where, success: statuses.some((s) => /^2\d\d$/.test(s)) }).toEqual({ where, success: true });
      expect({ where, statuses }).toEqual({ where, statuses: expect.arrayContaining(['400', '405', '500']) });
      expect({ where, allow: op.responses['405'].headers }).toEqual({ where, allow: { Allow: expect.anything() } });
      for (const status of statuses.filter((s) => Number(s) >= 400)) {
        const schema = op.responses[status].content?.['application/json']?.schema;
        expect({ where, status, schema: schema !== undefined }).toEqual({ where, status, schema: true });
        // The service's ErrorBody (the library's filter included), protosource's apierror, or /health's own body.
        const resolved = resolve(schema!);
        const shapes = (resolved.oneOf ?? [resolved]).map((s) => resolve(s));
        for (const shape of shapes) {
          const keys = Object.keys(shape.properties ?? {});
          const shaped = keys.includes('statusCode') || keys.includes('code') || (path === '/health' && keys.includes('error'));
          expect({ where, status, shaped }).toEqual({ where, status, shaped: true });
        }
      }
      if (['post', 'put', 'patch'].includes(method)) {
        const takesBody = op.requestBody !== undefined;
        expect({ where, takesBody }).toEqual({ where, takesBody: !path.startsWith('/admin') });
      }
    }
  });

  it('describes the answers the service gives to a bad x-actor, in their documented shape', async () => {
    for (const [method, path, op] of operations()) {
      const url = concrete(path);
      const agent = request(http);
      const res = await agent[method as 'get' | 'post' | 'delete'](url)
        .set('Accept', 'application/json')
        .set('x-actor', 'a'.repeat(201));
      expect({ route: `${method} ${url}`, status: res.status }).toEqual({ route: `${method} ${url}`, status: 400 });
      const schema = op.responses['400'].content!['application/json'].schema!;
      expect({ route: `${method} ${url}`, shaped: hasRequired(schema, res.body as Record<string, unknown>) }).toEqual({
        route: `${method} ${url}`,
        shaped: true,
      });
    }
  });

  it('describes the answer to a path parameter that is not valid percent-encoding, naming it as the document does', async () => {
    for (const [method, path, op] of operations()) {
      for (const [, name] of path.matchAll(/\{(\w+)\}/g)) {
        const url = concrete(path).replace(`${name}-1`, '%FF');
        const route = `${method} ${path} (${name})`;
        const res = await request(http)[method as 'get' | 'post' | 'delete'](url).set('Accept', 'application/json');
        expect({ route, status: res.status }).toEqual({ route, status: 400 });
        const body = res.body as Record<string, unknown>;
        expect({ route, shaped: hasRequired(op.responses['400'].content!['application/json'].schema!, body) }).toEqual({ route, shaped: true });
        // The service's shape names the parameter; protosource's answers its *_BAD_ID code.
        expect({ route, named: 'code' in body ? String(body.code).endsWith('_BAD_ID') : body.field === name }).toEqual({ route, named: true });
      }
    }
  });

  it("describes an order's total as an exact decimal string, and the raw append's 409 with lastVersion", () => {
    const order = resolve(doc.paths['/orders/{id}'].get.responses['200'].content!['application/json'].schema!);
    expect(order.properties?.total).toMatchObject({ type: 'string', pattern: expect.any(String) });
    const conflict = resolve(doc.paths['/aggregates/{id}/events'].post.responses['409'].content!['application/json'].schema!);
    expect(Object.keys(conflict.properties ?? {})).toEqual(expect.arrayContaining(['statusCode', 'versions', 'lastVersion', 'field']));
  });

  it("describes the rebuild's 409 (one already running), naming it", () => {
    const conflict = doc.paths['/admin/projections/order-stats/rebuild'].post.responses['409'];
    expect(conflict).toBeDefined();
    const schema = resolve(conflict.content!['application/json'].schema!);
    expect(Object.keys(schema.properties ?? {})).toEqual(expect.arrayContaining(['statusCode', 'message', 'rebuilding']));
  });

  it('describes the 405 the service gives to another method on each path', async () => {
    for (const [path, item] of Object.entries(doc.paths)) {
      const methods = Object.keys(item).filter((m) => HTTP_METHODS.includes(m));
      const other = methods.includes('put') ? 'patch' : 'put';
      const res = await request(http)[other](concrete(path)).set('Accept', 'application/json');
      expect({ path, status: res.status }).toEqual({ path, status: 405 });
      expect(res.headers.allow).toBeDefined();
    }
  });
});

describe('the description routes', () => {
  it('stay open: no admin token, whatever x-actor says', async () => {
    await request(http).get('/openapi.json').set('x-actor', 'a'.repeat(201)).expect(200);
    const ui = await request(http).get('/docs').set('x-actor', Buffer.from([0xff, 0xfe]).toString('latin1')).expect(200).expect('Content-Type', /text\/html/);
    expect(ui.text).toContain('swagger-ui');
    await request(http).get('/docs/swagger-ui-init.js').expect(200);
    await request(http).get('/docs/swagger-ui.css').expect(200);
    // While the admin routes are closed without the token.
    await request(http).post('/admin/projections/order-stats/rebuild').expect(401);
  });

  it('answer another method 405 with Allow, as every route of the service', async () => {
    const res = await request(http).post('/openapi.json').expect(405);
    expect(res.headers.allow).toBe('GET, HEAD');
    expect(res.body).toMatchObject({ statusCode: 405, error: 'Method Not Allowed' });
  });
});
