/**
 * The service's OpenAPI description (`@nestjs/swagger`): the document at `GET /openapi.json`, Swagger UI at
 * `GET /docs`, both open (no admin token), and the decorators the controllers describe their answers with.
 * Error bodies come from the library's `errorBodySchemaFor` (what `EventStoreExceptionFilter` and the
 * service's own filter answer); protosource's routes answer `apierror.v1.Error`, described from its descriptor.
 */
import { applyDecorators } from '@nestjs/common';
import type { INestApplication } from '@nestjs/common';
import { ScalarType, type DescField, type DescMessage } from '@bufbuild/protobuf';
import {
  ApiExtension,
  ApiHeader,
  ApiResponse,
  DocumentBuilder,
  SwaggerModule,
  type OpenAPIObject,
  type ReferenceObject,
  type SchemaObject,
} from '@nestjs/swagger';
import { errorBodySchema, errorBodySchemaFor, eventStoreErrorAnswers } from 'nest-cosmos-eventstore';
import { ApiErrorSchema } from 'nest-cosmos-eventstore/protosource';
import { MAX_ACTOR_LENGTH } from './request-input.js';

/** Where Swagger UI is served; its assets live under it. */
export const DOCS_PATH = '/docs';
/** Where the JSON document is served. */
export const OPENAPI_JSON_PATH = '/openapi.json';

/** The statuses the service's JSON error body `{ statusCode, error, message }` comes with. */
export type ServiceErrorStatus = 400 | 401 | 403 | 404 | 405 | 409 | 412 | 413 | 415 | 422 | 500 | 503;

const REASONS: Record<ServiceErrorStatus, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** A route's description of one error answer: a sentence, or a sentence and a body schema of its own. */
export type ErrorAnswerDescription = string | { description: string; schema: SchemaObject };

/** What `x-actor`, the query and the ids of every route are refused for. */
const INPUT_400 =
  'Invalid input, `field` names it: a query parameter the route does not take (or repeated, or empty), an id with a control character or `.`/`..`, ' +
  'a path parameter that is not valid percent-encoded UTF-8 (`%FF`: `field` is its name, as in this document), ' +
  `a bad \`x-actor\` header (not UTF-8, a control character, over ${MAX_ACTOR_LENGTH} characters, repeated)`;

/**
 * The error answers of one route of the service, in the JSON error shape (`errorBodySchemaFor` of the
 * library). Added to every route: 400 (the input rules above), 405 (another method on the path, with
 * `Allow`), 500. `body`: 413 and 415 too; `admin`: 401 and 403 (`ADMIN_TOKEN`).
 */
export function ApiErrors(
  answers: Partial<Record<ServiceErrorStatus, ErrorAnswerDescription>>,
  { body = false, admin = false }: { body?: boolean; admin?: boolean } = {},
): MethodDecorator & ClassDecorator {
  const all: Partial<Record<ServiceErrorStatus, ErrorAnswerDescription>> = {
    400: body ? `${INPUT_400}; a body that is not valid JSON or UTF-8, not an object, or with a field the route does not take (\`field: 'body'\` or the field)` : INPUT_400,
    405: 'The path is served for other methods only: `Allow` lists them',
    500: 'The service failed; its log has the detail',
    ...(body && {
      413: 'The body is over 16 MB',
      415: 'The body is not JSON (`content-type: application/json`), or its charset or content-encoding is not supported',
    }),
    ...(admin && {
      401: '`ADMIN_TOKEN` is set and the request has no `Authorization: Bearer <ADMIN_TOKEN>` (or another token)',
      403: 'Admin endpoints are off: a configured Cosmos DB account without `ADMIN_TOKEN`',
    }),
    ...answers,
  };
  return applyDecorators(
    ...Object.entries(all).map(([key, answer]) => {
      const status = Number(key) as ServiceErrorStatus;
      const { description, schema } = typeof answer === 'string' ? { description: answer, schema: errorSchema(status) } : answer!;
      return ApiResponse({
        status,
        description,
        content: { 'application/json': { schema } },
        ...(status === 405 && { headers: { Allow: { description: 'The methods the path is served for', schema: { type: 'string' } } } }),
      });
    }),
  );
}

/** The JSON error body for `status`: the library's description of its filter's answer where it has one. */
export function errorSchema(status: ServiceErrorStatus, extra: Record<string, SchemaObject> = {}): SchemaObject {
  const base: SchemaObject =
    status in eventStoreErrorAnswers
      ? eventStoreErrorAnswers[status as keyof typeof eventStoreErrorAnswers].schema
      : errorBodySchemaFor(status, REASONS[status]);
  return Object.keys(extra).length === 0 ? base : { ...base, properties: { ...base.properties, ...extra } };
}

/**
 * The headers of the orders' commands: `Idempotency-Key` (a retry answered as the first, nothing stored twice)
 * and `If-Match: "<version>"` (412 with the current version when the order is elsewhere).
 */
export const ApiCommandHeaders = (): MethodDecorator =>
  applyDecorators(
    ApiHeader({
      name: 'Idempotency-Key',
      required: false,
      description: '1 to 200 visible ASCII characters, given once: a repeat answers the first outcome and stores nothing; the same key with another command or body is 422',
      schema: { type: 'string', maxLength: 200 },
    }),
    ApiHeader({
      name: 'If-Match',
      required: false,
      description: 'The version the client decided on, as the `ETag` of `GET /orders/:id` gives it (`"5"`; `"0"`: the order must not exist)',
      schema: { type: 'string' },
    }),
    ApiResponse({
      status: 412,
      description: 'The order is not at the `If-Match` version: nothing was stored; `version` is the current one',
      content: { 'application/json': { schema: errorSchema(412, { version: { type: 'integer' } }) } },
    }),
  );

/** The `x-actor` header: who acts (stored with each event a command writes), checked on every route. */
export const ApiActorHeader = (): MethodDecorator & ClassDecorator =>
  ApiHeader({
    name: 'x-actor',
    required: false,
    description: `Who acts: UTF-8, at most ${MAX_ACTOR_LENGTH} characters, no control characters, given once; default \`anonymous\` (\`Unknown\` on protosource's routes)`,
    schema: { type: 'string', maxLength: MAX_ACTOR_LENGTH },
  });

// ---- protosource's routes: protobuf messages, as JSON (protobuf's JSON mapping) or binary ----

/** The messages described so far, by full name, for the document's `components.schemas`. */
const protoSchemas = new Map<string, SchemaObject>();

/** The JSON Schema of one field's value in protobuf's JSON mapping (64-bit integers are strings). */
function scalarSchema(scalar: ScalarType): SchemaObject {
  switch (scalar) {
    case ScalarType.STRING:
      return { type: 'string' };
    case ScalarType.BOOL:
      return { type: 'boolean' };
    case ScalarType.BYTES:
      return { type: 'string', format: 'byte' };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return { type: 'number' };
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return { type: 'string', format: 'int64', pattern: '^-?\\d+$' };
    default:
      return { type: 'integer', format: 'int32' };
  }
}

function fieldSchema(field: DescField): SchemaObject | ReferenceObject {
  switch (field.fieldKind) {
    case 'scalar':
      return scalarSchema(field.scalar);
    case 'enum':
      return { type: 'string', enum: field.enum.values.map((v) => v.name) };
    case 'message':
      return protoMessageSchema(field.message);
    case 'list': {
      const item =
        field.listKind === 'scalar'
          ? scalarSchema(field.scalar)
          : field.listKind === 'enum'
            ? { type: 'string', enum: field.enum.values.map((v) => v.name) }
            : protoMessageSchema(field.message);
      return { type: 'array', items: item };
    }
    case 'map': {
      const value =
        field.mapKind === 'scalar'
          ? scalarSchema(field.scalar)
          : field.mapKind === 'enum'
            ? { type: 'string', enum: field.enum.values.map((v) => v.name) }
            : protoMessageSchema(field.message);
      return { type: 'object', additionalProperties: value };
    }
  }
}

/**
 * A reference to the JSON Schema of a protobuf message in protobuf's JSON mapping (fields by their JSON
 * names; a field at its default value is left out), registered for the document's components.
 */
export function protoMessageSchema(message: DescMessage): ReferenceObject {
  if (!protoSchemas.has(message.typeName)) {
    const properties: Record<string, SchemaObject | ReferenceObject> = {};
    const schema: SchemaObject = { type: 'object', description: `protobuf message \`${message.typeName}\``, properties };
    protoSchemas.set(message.typeName, schema);
    for (const field of message.fields) properties[field.jsonName] = fieldSchema(field);
  }
  return { $ref: `#/components/schemas/${message.typeName}` };
}

/** A protobuf message as protosource's routes carry it: JSON when asked (`Accept`/`Content-Type`), else binary. */
export function protoContent(message: DescMessage): Record<string, { schema: SchemaObject | ReferenceObject }> {
  return {
    'application/json': { schema: protoMessageSchema(message) },
    'application/protobuf': { schema: { type: 'string', format: 'binary', description: `binary \`${message.typeName}\`` } },
  };
}

/**
 * The error answers of a protosource route, each an `apierror.v1.Error { code, message, detail }` (JSON or
 * binary, as the request's `Accept` asks); 404 and 405 come from the prefix's own router (a path it does not
 * serve, another method on a path it serves, with `Allow`).
 */
export function ApiProtosourceErrors(
  answers: Partial<Record<400 | 404 | 409 | 500 | 503, string>>,
  { body = false }: { body?: boolean } = {},
): MethodDecorator & ClassDecorator {
  // The service's parser and JSON-only rule refuse some bodies before the route runs, in this shape too.
  const bodyAnswers: Record<number, string> = body
    ? {
        413: '`PAYLOAD_TOO_LARGE`: a JSON body over 16 MB (a binary one is `CMD_UNMARSHAL`)',
        415: '`UNSUPPORTED_MEDIA_TYPE`: the body is neither JSON nor protobuf (`application/json`, `application/protobuf`), or its charset or content-encoding is not supported',
      }
    : {};
  const all: Record<number, string | undefined> = {
    ...bodyAnswers,
    404: '`NOT_FOUND`: a path under the prefix that no route serves',
    405: '`METHOD_NOT_ALLOWED`: the path is served for other methods only; `Allow` lists them',
    500: '`*_INTERNAL`/`*_FAILED`: the service failed',
    503: 'Cosmos DB was unavailable through the retries (worth retrying), with the step that failed as `code`',
    ...answers,
  };
  return applyDecorators(
    ...Object.entries(all).map(([status, description]) =>
      ApiResponse({
        status: Number(status),
        description,
        content: protoContent(ApiErrorSchema),
        ...(status === '405' && { headers: { Allow: { description: 'The methods the path is served for', schema: { type: 'string' } } } }),
      }),
    ),
  );
}

const PATH_PER_VALUE = 'x-path-per-value';

/**
 * An operation whose path parameter takes a fixed set of values, each with a body of its own
 * (`POST …/{command}`): the document lists one path per value (`POST …/create` with `Create`), as the
 * clients call them. It could not keep the template: `…/{command}` beside `…/{id}` are one path to OpenAPI.
 */
export function ApiPathPerValue(param: string, bodies: Record<string, SchemaObject | ReferenceObject>): MethodDecorator {
  return ApiExtension(PATH_PER_VALUE, { param, bodies }) as MethodDecorator;
}

type Operations = Record<string, Record<string, unknown> | undefined>;

/** Replaces each operation marked by `ApiPathPerValue` by one operation per value, on its own path. */
function expandPathsPerValue(document: OpenAPIObject): void {
  for (const [path, item] of Object.entries(document.paths)) {
    const operations = item as Operations;
    for (const [method, operation] of Object.entries(operations)) {
      const marker = operation?.[PATH_PER_VALUE] as { param: string; bodies: Record<string, SchemaObject | ReferenceObject> } | undefined;
      if (operation === undefined || marker === undefined) continue;
      const { [PATH_PER_VALUE]: _marker, ...rest } = operation;
      for (const [value, body] of Object.entries(marker.bodies)) {
        const concrete = path.replace(`{${marker.param}}`, value);
        const parameters = ((rest.parameters ?? []) as Array<{ name: string; in: string }>).filter((p) => !(p.in === 'path' && p.name === marker.param));
        const requestBody = {
          required: true,
          content: {
            'application/json': { schema: body },
            'application/protobuf': { schema: { type: 'string', format: 'binary', description: 'The same message, binary' } },
          },
        };
        const target = ((document.paths[concrete] as Operations | undefined) ??= {} as Operations);
        target[method] = { ...rest, operationId: `${String(rest.operationId)}_${value}`, parameters, requestBody };
      }
      delete operations[method];
    }
    if (Object.keys(operations).length === 0) delete document.paths[path];
  }
}

/**
 * The document, built from the controllers' decorators, with the library's error body and the protobuf
 * messages as reusable components.
 */
export function createOpenApiDocument(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('nest-cosmos-eventstore example service')
    .setDescription(
      'Orders (event-sourced on Cosmos DB), their statistics, the raw event store, subscriptions admin and protosource-compatible routes. ' +
        'Every error of the service is JSON `{ statusCode, error, message }` (`ErrorBody`, plus `field`, `versions`, `lastVersion`, `problems` or `retryable` where they apply); ' +
        "protosource's routes answer `funinthecloud.protosource.apierror.v1.Error` instead, their refusals of a body or path made before the route runs included. " +
        'Admin routes need `Authorization: Bearer <ADMIN_TOKEN>` when `ADMIN_TOKEN` is set. ' +
        'On any route, a body that is not JSON is answered 415 and one over 16 MB 413; a path no route serves 404. ' +
        'Money an order sums (`total`) is an exact decimal string with two decimals, as the statistics answer it.',
    )
    .setVersion('1')
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN, for the admin routes' }, 'admin')
    .build();
  const document = SwaggerModule.createDocument(app, config);
  expandPathsPerValue(document);
  document.components ??= {};
  document.components.schemas = {
    ...document.components.schemas,
    ErrorBody: errorBodySchema,
    ...Object.fromEntries(protoSchemas),
  };
  return document;
}

/** Serves the document at `/openapi.json` and Swagger UI at `/docs` (no YAML). */
export function setupOpenApi(app: INestApplication): void {
  SwaggerModule.setup(DOCS_PATH, app, () => createOpenApiDocument(app), {
    jsonDocumentUrl: OPENAPI_JSON_PATH,
    raw: ['json'],
  });
}
