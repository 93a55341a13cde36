import { All, Controller, Get, Logger, Post, Req, Res } from '@nestjs/common';
import { create, fromBinary, fromJson, toBinary, toJsonString, type DescMessage, type JsonValue, type Message } from '@bufbuild/protobuf';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ConcurrencyError, isCosmosUnavailable, NotFoundError, ValidationError, type SortOperator } from 'nest-cosmos-eventstore';
import {
  ApiErrorSchema,
  CommandResponseSchema,
  HistorySchema,
  InjectProtosourceRepository,
  isProtosourceCommandError,
  ProtosourceRepository,
  type ProtosourceCommand,
} from 'nest-cosmos-eventstore/protosource';
import {
  AddItemSchema,
  AddTagSchema,
  CancelSchema,
  ClearBillingSchema,
  CreateSchema,
  OrderListSchema,
  OrderSchema,
  PlaceSchema,
  RemoveItemSchema,
  RemoveTagSchema,
  SetBillingSchema,
  SetShippingSchema,
  type Order,
} from './gen/example-order/order_pb.js';
import { ItemAlreadyPresentError, orderCommands } from './order.domain.js';
import { actorOf, checkId } from '../../http/request-input.js';
import { ApiExcludeEndpoint, ApiOkResponse, ApiOperation, ApiParam, ApiQuery, ApiTags } from '@nestjs/swagger';
import { ApiActorHeader, ApiPathPerValue, ApiProtosourceErrors, protoContent, protoMessageSchema } from '../../http/openapi.js';

/** The route prefix protosource generates for the package `example.app.order.v1`. */
export const PREFIX = 'example/app/order/v1';

/** The largest command body read (the JSON parser's limit of the service). */
const MAX_BODY_BYTES = 16 * 1024 * 1024;

type HttpRequest = IncomingMessage & { body?: unknown; query: Record<string, unknown>; params: Record<string, string> };

/** What protosource's allowall authorizer puts in when nobody is named. */
const UNKNOWN_ACTOR = 'Unknown';

// Command routes as protosource generates them: POST <prefix>/<command name, lower case>.
const COMMANDS: Record<string, { schema: DescMessage; build(body: never, actor: string): ProtosourceCommand<Order> }> = {
  create: { schema: CreateSchema, build: orderCommands.create },
  additem: { schema: AddItemSchema, build: orderCommands.addItem },
  removeitem: { schema: RemoveItemSchema, build: orderCommands.removeItem },
  addtag: { schema: AddTagSchema, build: orderCommands.addTag },
  removetag: { schema: RemoveTagSchema, build: orderCommands.removeTag },
  setshipping: { schema: SetShippingSchema, build: orderCommands.setShipping },
  setbilling: { schema: SetBillingSchema, build: orderCommands.setBilling },
  clearbilling: { schema: ClearBillingSchema, build: orderCommands.clearBilling },
  place: { schema: PlaceSchema, build: orderCommands.place },
  cancel: { schema: CancelSchema, build: orderCommands.cancel },
};

const SORT_OPERATORS: Record<string, SortOperator> = { eq: '=', lt: '<', le: '<=', gt: '>', ge: '>=', begins_with: 'begins_with', between: 'between' };

// The fixed messages protosource's handlers give each command refusal.
const COMMAND_MESSAGES: Record<string, string | undefined> = {
  CMD_EMPTY_ID: 'aggregate id is required',
  CMD_ALREADY_CREATED: 'aggregate already exists',
  CMD_NOT_CREATED: 'aggregate not found',
  CMD_STATE_VIOLATION: 'command not allowed in current aggregate state',
};

/**
 * protosource's generated HTTP handler for the example order, on the same routes and with the same bodies,
 * so protosource's Go and TypeScript clients talk to this service unchanged: commands
 * `POST example/app/order/v1/{create|additem|…|cancel}` answer `CommandResponse { id, version }`;
 * `GET …/{id}` the materialized order, `GET …/load/{id}` the order replayed from its events,
 * `GET …/{id}/history` its `History`, `GET …/query/by-customer-id?customer_id=…[&sk_op=…&create_at=…]` an
 * `OrderList`. Bodies are binary protobuf unless the request's `Content-Type` (for what it sends) or
 * `Accept` (for what it gets) says `application/json`, protosource's default; errors are
 * `funinthecloud.protosource.apierror.v1.Error { code, message, detail }`. Like protosource's `allowall`
 * authorizer this example authenticates nobody: the actor is the `x-actor` header, else `Unknown`, and
 * never a field of the body.
 */
@Controller()
@ApiTags('protosource orders')
@ApiActorHeader()
export class ProtosourceOrdersController {
  private readonly logger = new Logger('ProtosourceOrders');

  constructor(@InjectProtosourceRepository(OrderSchema) private readonly orders: ProtosourceRepository<Order>) {}

  @Post(`${PREFIX}/:command`)
  @ApiOperation({
    summary: 'Run a command on an order (protosource\'s generated route)',
    description: 'The body is the command\'s message: binary protobuf, or JSON with `Content-Type: application/json`.',
  })
  @ApiParam({ name: 'command', enum: Object.keys(COMMANDS) })
  // Listed as one path per command, each with its message as the body.
  @ApiPathPerValue('command', Object.fromEntries(Object.entries(COMMANDS).map(([name, { schema }]) => [name, protoMessageSchema(schema)])))
  @ApiOkResponse({ description: "The order's id and new version", content: protoContent(CommandResponseSchema) })
  @ApiProtosourceErrors(
    {
      400: '`CMD_UNMARSHAL` (a body that is not the command\'s message: not JSON, not UTF-8, not an object, not the message), `CMD_VALIDATION` (a bad id or `x-actor`, a value the store refuses), `CMD_EMPTY_ID`',
      404: '`CMD_NOT_CREATED`: no such order; `NOT_FOUND`: no such command',
      409: '`CMD_ALREADY_CREATED`, `CMD_STATE_VIOLATION` (the order\'s state does not allow the command), `CMD_REJECTED` (an item already present), `CMD_CONFLICT` (another command changed the order first: retry)',
    },
    { body: true },
  )
  async command(@Req() req: HttpRequest, @Res() res: ServerResponse): Promise<void> {
    const route = COMMANDS[req.params.command];
    if (!route) return this.notRouted(req, res);
    let actor: string;
    try {
      // The service's x-actor rules (UTF-8, no control characters, at most 200 characters, once), as on every route.
      actor = actorOf(req, UNKNOWN_ACTOR);
    } catch (err) {
      return reply(req, res, 400, ...apiError('CMD_VALIDATION', (err as Error).message));
    }
    let body: Message & { id: string };
    try {
      body = (await readMessage(req, route.schema)) as Message & { id: string };
    } catch (err) {
      return reply(req, res, 400, ...apiError('CMD_UNMARSHAL', 'invalid request body', err));
    }
    try {
      // The service's id rule (no control characters, not `.` or `..`); an empty id is the command's CMD_EMPTY_ID.
      checkId('id', body.id);
    } catch (err) {
      return reply(req, res, 400, ...apiError('CMD_VALIDATION', (err as Error).message));
    }
    try {
      const version = await this.orders.apply(route.build(body as never, actor));
      return reply(req, res, 200, CommandResponseSchema, create(CommandResponseSchema, { id: body.id, version: BigInt(version) }));
    } catch (err) {
      if (isProtosourceCommandError(err)) {
        return reply(req, res, err.status, ...apiError(err.code, COMMAND_MESSAGES[err.code] ?? err.message));
      }
      // Deliberately not Go's 500 for what the caller sent or can retry: an item already present, a value
      // the store refuses (an id over its limit), a lost race for the version.
      if (err instanceof ItemAlreadyPresentError) return reply(req, res, 409, ...apiError('CMD_REJECTED', err.message));
      if (err instanceof ValidationError) return reply(req, res, 400, ...apiError('CMD_VALIDATION', err.message));
      if (err instanceof ConcurrencyError) {
        return reply(req, res, 409, ...apiError('CMD_CONFLICT', 'another command changed the aggregate first; retry', err));
      }
      this.logger.error(`command ${req.params.command} failed: ${(err as Error).message}`);
      return reply(req, res, failureStatus(err), ...apiError('CMD_INTERNAL', `internal error: ${(err as Error).message}`));
    }
  }

  @Get(`${PREFIX}/query/by-customer-id`)
  @ApiOperation({ summary: "A customer's orders, optionally by creation time" })
  @ApiQuery({ name: 'customer_id', required: true })
  @ApiQuery({ name: 'sk_op', required: false, description: 'A condition on `create_at` (any letter case)', enum: Object.keys(SORT_OPERATORS) })
  @ApiQuery({ name: 'create_at', required: false, description: 'Needed with `sk_op` (an int64)', schema: { type: 'string', format: 'int64' } })
  @ApiQuery({ name: 'create_at2', required: false, description: 'The inclusive upper bound of `between` (an int64)', schema: { type: 'string', format: 'int64' } })
  @ApiOkResponse({ description: 'The orders', content: protoContent(OrderListSchema) })
  @ApiProtosourceErrors({
    400: '`QUERY_MISSING_PK`, `QUERY_BAD_PARAM` (a bad id, int64 or `x-actor`), `QUERY_BAD_OP`, `QUERY_MISSING_SK`',
    500: '`QUERY_EXEC`: the query failed',
    503: '`QUERY_EXEC`: Cosmos DB was unavailable through the retries',
  })
  async byCustomer(@Req() req: HttpRequest, @Res() res: ServerResponse): Promise<void> {
    const customerId = queryParam(req, 'customer_id');
    if (!customerId) return reply(req, res, 400, ...apiError('QUERY_MISSING_PK', 'missing required parameter: customer_id'));
    try {
      checkId('customer_id', customerId);
      actorOf(req, UNKNOWN_ACTOR);
    } catch (err) {
      return reply(req, res, 400, ...apiError('QUERY_BAD_PARAM', (err as Error).message));
    }
    const skOp = queryParam(req, 'sk_op');
    let sort: Parameters<ProtosourceRepository<Order>['query']>[2];
    if (skOp) {
      const op = SORT_OPERATORS[skOp.toLowerCase()];
      if (!op) return reply(req, res, 400, ...apiError('QUERY_BAD_OP', `invalid sort operator: ${skOp}`));
      const value = int64Param(req, 'create_at');
      if (typeof value === 'string') return reply(req, res, 400, ...apiError(value === 'missing' ? 'QUERY_MISSING_SK' : 'QUERY_BAD_PARAM', describe(value, 'create_at')));
      sort = { op, value: { create_at: value } };
      if (op === 'between') {
        const upper = int64Param(req, 'create_at2');
        if (typeof upper === 'string') {
          const message = upper === 'missing' ? 'missing required parameter: create_at2 (required for between)' : describe(upper, 'create_at2');
          return reply(req, res, 400, ...apiError(upper === 'missing' ? 'QUERY_MISSING_SK' : 'QUERY_BAD_PARAM', message));
        }
        sort.value2 = { create_at: upper };
      }
    }
    try {
      const items = await this.orders.query(1, { customer_id: customerId }, sort);
      return reply(req, res, 200, OrderListSchema, create(OrderListSchema, { items }));
    } catch (err) {
      return reply(req, res, failureStatus(err), ...apiError('QUERY_EXEC', 'query failed', err));
    }
  }

  @Get(`${PREFIX}/load/:id`)
  @ApiOperation({ summary: 'The order replayed from its events' })
  @ApiParam({ name: 'id', description: 'The order id' })
  @ApiOkResponse({ description: 'The order', content: protoContent(OrderSchema) })
  @ApiProtosourceErrors({
    400: '`LOAD_BAD_ID`: a bad id (a path segment that is not valid percent-encoding included) or `x-actor`',
    404: '`LOAD_NOT_FOUND`: no such order',
    500: '`LOAD_FAILED`',
    503: '`LOAD_FAILED`: Cosmos DB was unavailable through the retries',
  })
  async load(@Req() req: HttpRequest, @Res() res: ServerResponse): Promise<void> {
    if (!validPathId(req, res, 'LOAD_BAD_ID')) return;
    try {
      const { aggregate } = await this.orders.load(req.params.id);
      return reply(req, res, 200, OrderSchema, aggregate);
    } catch (err) {
      if (err instanceof NotFoundError) return reply(req, res, 404, ...apiError('LOAD_NOT_FOUND', 'aggregate not found'));
      return reply(req, res, failureStatus(err), ...apiError('LOAD_FAILED', 'failed to load aggregate', err));
    }
  }

  @Get(`${PREFIX}/:id/history`)
  @ApiOperation({ summary: "The order's stored records" })
  @ApiParam({ name: 'id', description: 'The order id' })
  @ApiOkResponse({ description: 'The records', content: protoContent(HistorySchema) })
  @ApiProtosourceErrors({
    400: '`HIST_BAD_ID`: a bad id (a path segment that is not valid percent-encoding included) or `x-actor`',
    404: '`HIST_NOT_FOUND`: no such order',
    500: '`HIST_LOAD`',
    503: '`HIST_LOAD`: Cosmos DB was unavailable through the retries',
  })
  async history(@Req() req: HttpRequest, @Res() res: ServerResponse): Promise<void> {
    if (!validPathId(req, res, 'HIST_BAD_ID')) return;
    try {
      const records = await this.orders.history(req.params.id);
      // No event: no such aggregate (Go answers 200 with an empty body, which no client can tell from an empty history).
      if (records.length === 0) return reply(req, res, 404, ...apiError('HIST_NOT_FOUND', 'aggregate not found'));
      const history = create(HistorySchema, {
        records: records.map((r) => ({ version: BigInt(r.version), data: r.data, ttl: BigInt(r.ttl ?? 0) })),
      });
      return reply(req, res, 200, HistorySchema, history);
    } catch (err) {
      return reply(req, res, failureStatus(err), ...apiError('HIST_LOAD', 'failed to load history', err));
    }
  }

  @Get(`${PREFIX}/:id`)
  @ApiOperation({ summary: 'The materialized order' })
  @ApiParam({ name: 'id', description: 'The order id' })
  @ApiOkResponse({ description: 'The order', content: protoContent(OrderSchema) })
  @ApiProtosourceErrors({
    400: '`GET_BAD_ID`: a bad id (a path segment that is not valid percent-encoding included) or `x-actor`',
    404: '`GET_NOT_FOUND`: no such order',
    500: '`GET_FAILED`',
    503: '`GET_FAILED`: Cosmos DB was unavailable through the retries',
  })
  async get(@Req() req: HttpRequest, @Res() res: ServerResponse): Promise<void> {
    if (!validPathId(req, res, 'GET_BAD_ID')) return;
    try {
      return reply(req, res, 200, OrderSchema, await this.orders.get(req.params.id));
    } catch (err) {
      if (err instanceof NotFoundError) return reply(req, res, 404, ...apiError('GET_NOT_FOUND', 'aggregate not found'));
      return reply(req, res, failureStatus(err), ...apiError('GET_FAILED', 'failed to load aggregate', err));
    }
  }

  /** Any other method or path under the prefix: 405 where another method has the path, else 404, as protosource's router. */
  @All([PREFIX, `${PREFIX}/*rest`])
  // Not an operation: the prefix's fallback, whose 404 and 405 every protosource operation describes.
  @ApiExcludeEndpoint()
  notRouted(@Req() req: HttpRequest, @Res() res: ServerResponse): void {
    const segments = (req.url ?? '').split('?')[0].split('/').filter(Boolean).slice(4);
    // One segment is GET {id} (or a command); two are load/{id}, {id}/history and query/by-customer-id.
    const known =
      segments.length === 1 ||
      (segments.length === 2 && (segments[0] === 'load' || segments[1] === 'history')) ||
      (segments.length === 2 && segments[0] === 'query' && segments[1] === 'by-customer-id');
    if (!known) return reply(req, res, 404, ...apiError('NOT_FOUND', `no route ${req.method ?? ''} ${(req.url ?? '').split('?')[0]}`));
    // A command name is also a GET of the order with that id; every other known path is GET only.
    const allow = segments.length === 1 && COMMANDS[segments[0]] ? 'GET, HEAD, POST' : 'GET, HEAD';
    res.setHeader('Allow', allow);
    return reply(req, res, 405, ...apiError('METHOD_NOT_ALLOWED', `${req.method ?? ''} is not allowed here; use ${allow}`));
  }
}

// The codes of the body refusals made before protosource's handler runs (the parser's, the JSON-only rule's).
const BODY_REFUSALS: Record<number, string | undefined> = { 400: 'CMD_UNMARSHAL', 413: 'PAYLOAD_TOO_LARGE', 415: 'UNSUPPORTED_MEDIA_TYPE' };

/**
 * A request body refused before the route runs (not JSON or not UTF-8: 400; over the limit: 413; neither
 * JSON nor protobuf: 415), answered in the apierror shape for a path under the prefix: 400 `CMD_UNMARSHAL`
 * as protosource's handler answers a body it cannot decode, 413 `PAYLOAD_TOO_LARGE`, 415
 * `UNSUPPORTED_MEDIA_TYPE`. False (not answered) for a path outside the prefix or another status.
 */
export function answerBodyRefusal(req: IncomingMessage, res: ServerResponse, status: number, detail: string): boolean {
  const code = BODY_REFUSALS[status];
  if (code === undefined || !(req.url ?? '').startsWith(`/${PREFIX}/`)) return false;
  reply(req as HttpRequest, res, status, ...apiError(code, status === 400 ? 'invalid request body' : detail, status === 400 ? detail : undefined));
  return true;
}

/**
 * A path under the prefix with a segment that is not valid percent-encoded UTF-8 (`GET …/%FF`), which the
 * router refuses before any route runs: answered in the apierror shape, as the route would answer a bad
 * id (`GET_BAD_ID`, `LOAD_BAD_ID`, `HIST_BAD_ID`), or 404 `NOT_FOUND` for a command name or a path off the
 * routes. False (not answered) for a path outside the prefix.
 */
export function answerUndecodablePath(req: IncomingMessage, res: ServerResponse, param: { name: string; route: string; raw: string }): boolean {
  if (!(req.url ?? '').startsWith(`/${PREFIX}/`)) return false;
  const message = `${param.name}: ${JSON.stringify(param.raw.slice(0, 100))} is not valid percent-encoded UTF-8`;
  const code =
    param.name !== 'id'
      ? undefined
      : param.route.endsWith('/load/:id')
        ? 'LOAD_BAD_ID'
        : param.route.endsWith('/:id/history')
          ? 'HIST_BAD_ID'
          : 'GET_BAD_ID';
  if (code === undefined) reply(req as HttpRequest, res, 404, ...apiError('NOT_FOUND', `no route ${req.method ?? ''} ${(req.url ?? '').split('?')[0]}`));
  else reply(req as HttpRequest, res, 400, ...apiError(code, message));
  return true;
}

/**
 * The `:id` of a read route under the service's id rule, and the `x-actor` header under its rules (as on
 * every route of the service, though a read stores no actor); else answered 400 with `code` (and false).
 */
function validPathId(req: HttpRequest, res: ServerResponse, code: string): boolean {
  try {
    checkId('id', req.params.id);
    actorOf(req, UNKNOWN_ACTOR);
    return true;
  } catch (err) {
    reply(req, res, 400, ...apiError(code, (err as Error).message));
    return false;
  }
}

function header(req: IncomingMessage, name: string): string {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(',') : (value ?? '');
}

function queryParam(req: HttpRequest, name: string): string {
  const value = req.query[name];
  return typeof value === 'string' ? value : Array.isArray(value) && typeof value[0] === 'string' ? value[0] : '';
}

/** A query parameter as Go's strconv.ParseInt(s, 10, 64) reads it. */
function int64Param(req: HttpRequest, name: string): bigint | 'missing' | 'invalid' {
  const raw = queryParam(req, name);
  if (raw === '') return 'missing';
  if (!/^[+-]?\d+$/.test(raw)) return 'invalid';
  const value = BigInt(raw);
  return value >= -(2n ** 63n) && value < 2n ** 63n ? value : 'invalid';
}

function describe(problem: 'missing' | 'invalid', name: string): string {
  return problem === 'missing' ? `missing required parameter: ${name}` : `invalid value for ${name}: invalid int64`;
}

/** protosource's content rule: protobuf when the header names it, JSON when it names JSON, protobuf otherwise. */
function wantsProtobuf(value: string): boolean {
  if (value.includes('application/protobuf')) return true;
  return !value.includes('application/json');
}

async function readMessage(req: HttpRequest, schema: DescMessage): Promise<Message> {
  if (!wantsProtobuf(header(req, 'content-type'))) {
    // The service's JSON parser has read the body already (any JSON value: a message is an object).
    const body = req.body === undefined ? {} : req.body;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new Error(`the body must be a JSON object (a ${schema.typeName}), not ${body === null ? 'null' : Array.isArray(body) ? 'an array' : `a ${typeof body}`}`);
    }
    return fromJson(schema, body as JsonValue);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new Error(`request body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  return fromBinary(schema, Buffer.concat(chunks));
}

function apiError(code: string, message: string, cause?: unknown): [DescMessage, Message] {
  const detail = cause === undefined ? '' : cause instanceof Error ? cause.message : String(cause);
  return [ApiErrorSchema, create(ApiErrorSchema, { code, message, detail })];
}

function reply(req: HttpRequest, res: ServerResponse, status: number, schema: DescMessage, message: Message): void {
  res.statusCode = status;
  if (wantsProtobuf(header(req, 'accept'))) {
    res.setHeader('Content-Type', 'application/protobuf');
    res.end(Buffer.from(toBinary(schema, message)));
  } else {
    res.setHeader('Content-Type', 'application/json');
    res.end(toJsonString(schema, message));
  }
}

/** 503 when Cosmos DB was unavailable after the stores' retries (worth retrying), else 500, in Go's error shape. */
function failureStatus(err: unknown): number {
  return isCosmosUnavailable(err) ? 503 : 500;
}
