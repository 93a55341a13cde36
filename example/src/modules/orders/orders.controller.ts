import { Body, Controller, Delete, Get, HttpCode, HttpStatus, Param, Post, Query, Req, Res, UseFilters, UseInterceptors } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { AggregateNotFoundError, CommandValidationError, CorrelationIdInterceptor, eventStoreErrorAnswers, InjectAggregateRepository, AggregateRepository, type Command } from 'nest-cosmos-eventstore';
import { EventStoreExceptionFilter } from 'nest-cosmos-eventstore';
import { ApiBody, ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiParam, ApiQuery, ApiTags } from '@nestjs/swagger';
import { ApiActorHeader, ApiCommandHeaders, ApiErrors } from '../../http/openapi.js';
import { actorOf, bodyFields, checkId, pathId, queryParams, type QueryParams } from '../../http/request-input.js';
import { AdminEndpoint } from '../store-api/admin-token.guard.js';
import { commandError, commandOptions, orderIdForKey, versionTag } from './command-headers.js';
import { Order } from './order.aggregate.js';
import { AddLine, CancelOrder, PlaceOrder, RemoveLine, ShipOrder, SubmitOrder } from './order.commands.js';
import {
  pageParams,
  statusParam,
  toHistoryEventDto,
  toOrderDto,
  toOrderPageDto,
  ADD_LINE_BODY,
  EMPTY_BODY,
  HISTORY_SCHEMA,
  ORDER_PAGE_SCHEMA,
  ORDER_SCHEMA,
  ORDER_STATUSES,
  PLACE_ORDER_BODY,
  VERSION_SCHEMA,
  type HistoryEventDto,
  type OrderDto,
  type OrderPageDto,
} from './orders.dto.js';

/** What a command on an existing order can answer besides its new version. */
const COMMAND_ERRORS = {
  404: 'No such order',
  409: 'The order\'s state does not allow the command, or (`retryable: true`) the command kept losing the race to concurrent ones: send it again',
  422: 'The command refused its input (`problems`) or refused to run',
  503: eventStoreErrorAnswers[503].description,
} as const;

/** What reading one order can answer besides the order. */
const READ_ERRORS = {
  404: 'No such order',
  500: eventStoreErrorAnswers[500].description,
  503: 'Cosmos DB is unavailable; retry later',
} as const;

/** What a page of orders can answer besides the page. */
const LIST_ERRORS = {
  400: 'Invalid input, `field` names it: `limit` not 1-1000, a `continuationToken` not issued for this query, an unknown, repeated or empty parameter, a bad id or `x-actor`',
  503: 'Cosmos DB is unavailable; retry later',
} as const;

const LIMIT_QUERY = { name: 'limit', required: false, description: 'Items per page, 1-1000 (default 50)', schema: { type: 'integer', minimum: 1, maximum: 1000 } } as const;
const TOKEN_QUERY = { name: 'continuationToken', required: false, description: 'From the previous page of the same query', type: String } as const;

/** Slot 1 indexes orders by customer, slot 2 by status (see `Order`). */
const BY_CUSTOMER = 1;
const BY_STATUS = 2;

interface VersionDto {
  version: number;
}

/**
 * The orders API. Commands answer the order's new version; unknown order → 404, a command the order's state
 * does not allow → 409, a command that kept losing the race to concurrent ones → 409 `retryable`, invalid
 * input → 400 (malformed: unknown fields or query parameters, a repeated or empty parameter, a bad
 * `x-actor`) or 422 (refused by the command). The `x-actor` header names who acts (default `anonymous`,
 * UTF-8, at most 200 characters); it is stored with each event, and so is the correlation id
 * (`x-correlation-id`, else the `traceparent` trace id, else a fresh one; answered in `x-correlation-id`).
 * Every command takes an `Idempotency-Key` (a repeat answers the first outcome and stores nothing; the
 * same key with another command → 422) and `If-Match: "<version>"` (another version → 412 with the
 * current `version`); `GET /orders/:id` answers its version as `ETag`, and 304 to a matching `If-None-Match`.
 */
@Controller()
@UseFilters(EventStoreExceptionFilter)
@UseInterceptors(CorrelationIdInterceptor)
@ApiTags('orders')
@ApiActorHeader()
export class OrdersController {
  constructor(@InjectAggregateRepository(Order) private readonly orders: AggregateRepository<Order>) {}

  /**
   * `POST /orders` `{ customerId, orderId? }` → 201 `{ id, version }`; an `orderId` that exists → 409. With an
   * `Idempotency-Key` and no `orderId`, the id is derived from the key (and the actor).
   */
  @Post('orders')
  @ApiCommandHeaders()
  @HttpCode(HttpStatus.CREATED)
  @ApiOperation({ summary: 'Place an order' })
  @ApiBody({ schema: PLACE_ORDER_BODY })
  @ApiCreatedResponse({ description: 'The order and its first version', schema: { type: 'object', required: ['id', 'version'], properties: { id: { type: 'string' }, version: { type: 'integer' } } } })
  @ApiErrors({ 409: 'An order with this `orderId` exists', 422: 'The command refused its input (`problems`)', 503: 'Cosmos DB is unavailable' }, { body: true })
  async place(@Body() body: unknown, @Query() query: QueryParams, @Req() req: IncomingMessage): Promise<{ id: string; version: number }> {
    queryParams(query, []);
    const given = bodyFields(body, ['customerId', 'orderId']);
    const key = commandOptions(req).idempotencyKey;
    // Without an orderId, a keyed create derives its id from the key: its retry addresses the same order.
    const { customerId, orderId = key === undefined ? randomUUID() : orderIdForKey(actorOf(req), key) } = given;
    // Ids the routes could not address later are refused as the path rule refuses them (the command checks the rest).
    bodyId('orderId', orderId);
    bodyId('customerId', customerId);
    const command = new PlaceOrder(orderId as string, customerId as string);
    if (PlaceOrder.idProblems(orderId).length > 0) throw new CommandValidationError(PlaceOrder.name, command.validate());
    return { id: command.aggregateId, version: await this.run(command, req) };
  }

  /** `POST /orders/:id/lines` `{ sku, quantity, unitPrice }`. */
  @Post('orders/:id/lines')
  @ApiCommandHeaders()
  @HttpCode(HttpStatus.OK)
  @ApiOperation({ summary: 'Add a line to an open order' })
  @ApiParam({ name: 'id', description: 'The order id (at most 200 characters)' })
  @ApiBody({ schema: ADD_LINE_BODY })
  @ApiOkResponse({ description: "The order's new version", schema: VERSION_SCHEMA })
  @ApiErrors(COMMAND_ERRORS, { body: true })
  async addLine(@Param('id') id: string, @Body() body: unknown, @Query() query: QueryParams, @Req() req: IncomingMessage): Promise<VersionDto> {
    queryParams(query, []);
    const { sku, quantity, unitPrice } = bodyFields(body, ['sku', 'quantity', 'unitPrice']);
    bodyId('sku', sku);
    return { version: await this.run(new AddLine(pathId('id', id), sku as string, quantity as number, unitPrice as number), req) };
  }

  /** `DELETE /orders/:id/lines/:sku`; removing a line that is not there succeeds without a new version. */
  @Delete('orders/:id/lines/:sku')
  @ApiCommandHeaders()
  @ApiOperation({ summary: 'Remove a line; removing one that is not there succeeds without a new version' })
  @ApiParam({ name: 'id', description: 'The order id (at most 200 characters)' })
  @ApiParam({ name: 'sku', description: 'The line to remove' })
  @ApiBody({ schema: EMPTY_BODY, required: false })
  @ApiOkResponse({ description: "The order's version", schema: VERSION_SCHEMA })
  @ApiErrors(COMMAND_ERRORS, { body: true })
  async removeLine(
    @Param('id') id: string,
    @Param('sku') sku: string,
    @Body() body: unknown,
    @Query() query: QueryParams,
    @Req() req: IncomingMessage,
  ): Promise<VersionDto> {
    queryParams(query, []);
    bodyFields(body, [], { required: false });
    return { version: await this.run(new RemoveLine(pathId('id', id), pathId('sku', sku)), req) };
  }

  @Post('orders/:id/submit')
  @ApiCommandHeaders()
  @HttpCode(HttpStatus.OK)
  @ApiOperation({ summary: 'Submit an open order' })
  @ApiParam({ name: 'id', description: 'The order id (at most 200 characters)' })
  @ApiBody({ schema: EMPTY_BODY, required: false })
  @ApiOkResponse({ description: "The order's new version", schema: VERSION_SCHEMA })
  @ApiErrors(COMMAND_ERRORS, { body: true })
  async submit(@Param('id') id: string, @Body() body: unknown, @Query() query: QueryParams, @Req() req: IncomingMessage): Promise<VersionDto> {
    return { version: await this.run(new SubmitOrder(pathId('id', id)), req, body, query) };
  }

  @Post('orders/:id/ship')
  @ApiCommandHeaders()
  @HttpCode(HttpStatus.OK)
  @ApiOperation({ summary: 'Ship a submitted order' })
  @ApiParam({ name: 'id', description: 'The order id (at most 200 characters)' })
  @ApiBody({ schema: EMPTY_BODY, required: false })
  @ApiOkResponse({ description: "The order's new version", schema: VERSION_SCHEMA })
  @ApiErrors(COMMAND_ERRORS, { body: true })
  async ship(@Param('id') id: string, @Body() body: unknown, @Query() query: QueryParams, @Req() req: IncomingMessage): Promise<VersionDto> {
    return { version: await this.run(new ShipOrder(pathId('id', id)), req, body, query) };
  }

  @Post('orders/:id/cancel')
  @ApiCommandHeaders()
  @HttpCode(HttpStatus.OK)
  @ApiOperation({ summary: 'Cancel an order' })
  @ApiParam({ name: 'id', description: 'The order id (at most 200 characters)' })
  @ApiBody({ schema: EMPTY_BODY, required: false })
  @ApiOkResponse({ description: "The order's new version", schema: VERSION_SCHEMA })
  @ApiErrors(COMMAND_ERRORS, { body: true })
  async cancel(@Param('id') id: string, @Body() body: unknown, @Query() query: QueryParams, @Req() req: IncomingMessage): Promise<VersionDto> {
    return { version: await this.run(new CancelOrder(pathId('id', id)), req, body, query) };
  }

  /**
   * The materialized order (rebuilt from its events when materializing it failed, best effort), its version
   * as `ETag`; 304 to an `If-None-Match` naming it.
   */
  @Get('orders/:id')
  @ApiOperation({ summary: 'The order (materialized; rebuilt from its events when materializing it failed)' })
  @ApiParam({ name: 'id', description: 'The order id (at most 200 characters)' })
  @ApiOkResponse({ description: 'The order', schema: ORDER_SCHEMA })
  @ApiErrors(READ_ERRORS)
  async get(
    @Param('id') id: string,
    @Query() query: QueryParams,
    @Res({ passthrough: true }) res: ServerResponse,
  ): Promise<OrderDto> {
    queryParams(query, []);
    pathId('id', id);
    const order = await this.current(id);
    // The version is the order's entity tag (If-Match of the commands takes it back); Express answers 304
    // to an If-None-Match naming it (its own weak body tag is not made when one is set).
    res.setHeader('ETag', versionTag(order.version));
    return toOrderDto(order);
  }

  private async current(id: string): Promise<Order> {
    try {
      return await this.orders.get(id);
    } catch (err) {
      if (!(err instanceof AggregateNotFoundError)) throw err;
      const order = await this.orders.load(id);
      if (order.version === 0) throw err;
      return order;
    }
  }

  /**
   * `DELETE /admin/orders/:id` (admin): erases the order (the right to erasure): its events, tip and
   * idempotency keys, leaving a tombstone the change feed hands to the read models, and its materialized
   * document. Commands on the order running at the same time do not bring it back (see `AggregateRepository.erase`).
   * 200 `{ erased: true }`; an unknown (or already erased) order → 404. The id cannot be placed again (409).
   */
  @Delete('admin/orders/:id')
  @AdminEndpoint()
  @ApiOperation({ summary: 'Erase an order (the right to erasure): its views, events, tip and idempotency keys' })
  @ApiParam({ name: 'id', description: 'The order id (at most 200 characters)' })
  @ApiOkResponse({ description: 'Erased', schema: { type: 'object', required: ['erased'], properties: { erased: { type: 'boolean', enum: [true] } } } })
  @ApiErrors({ 404: 'No such order (or erased before)', 503: 'Cosmos DB is unavailable; retry later' }, { body: true, admin: true })
  async erase(@Param('id') id: string, @Body() body: unknown, @Query() query: QueryParams): Promise<{ erased: true }> {
    queryParams(query, []);
    bodyFields(body, [], { required: false });
    if (!(await this.orders.erase(pathId('id', id)))) throw new AggregateNotFoundError(this.orders.type, id);
    return { erased: true };
  }

  /**
   * `POST /admin/orders/:id/truncate` (admin): cuts the order's events safely (`AggregateRepository.truncate`): a
   * snapshot of its state as the next version, then every event before it goes. The order, its commands and
   * `/order-stats` (a rebuild too, which counts the order from the snapshot) go on as before; its history keeps
   * what follows the snapshot. 200 `{ truncated: true, firstVersion }`; an unknown (or erased) order → 404.
   */
  @Post('admin/orders/:id/truncate')
  @HttpCode(HttpStatus.OK)
  @AdminEndpoint()
  @ApiOperation({ summary: "Truncate an order's events: a snapshot of its state first, then the events before it go" })
  @ApiParam({ name: 'id', description: 'The order id (at most 200 characters)' })
  @ApiOkResponse({
    description: 'Truncated: the snapshot is the first version kept',
    schema: {
      type: 'object',
      required: ['truncated', 'firstVersion'],
      properties: { truncated: { type: 'boolean', enum: [true] }, firstVersion: { type: 'integer', minimum: 2 } },
    },
  })
  @ApiErrors({ 404: 'No such order (or erased)', 503: 'Cosmos DB is unavailable; retry later' }, { body: true, admin: true })
  async truncate(@Param('id') id: string, @Body() body: unknown, @Query() query: QueryParams): Promise<{ truncated: true; firstVersion: number }> {
    queryParams(query, []);
    bodyFields(body, [], { required: false });
    return { truncated: true, firstVersion: await this.orders.truncate(pathId('id', id)) };
  }

  /** Every event of the order, oldest first, with its `eventId`, `correlationId` and `causationId`. */
  @Get('orders/:id/history')
  @ApiOperation({ summary: "The order's events, oldest first" })
  @ApiParam({ name: 'id', description: 'The order id (at most 200 characters)' })
  @ApiOkResponse({ description: 'The events', schema: HISTORY_SCHEMA })
  @ApiErrors(READ_ERRORS)
  async history(@Param('id') id: string, @Query() query: QueryParams): Promise<{ events: HistoryEventDto[] }> {
    queryParams(query, []);
    const events = await this.orders.history(pathId('id', id));
    // A truncated order's history may be empty (its snapshot is no event): it is there all the same.
    if (events.length === 0 && (await this.orders.load(id)).version === 0) throw new AggregateNotFoundError(this.orders.type, id);
    return { events: events.map(toHistoryEventDto) };
  }

  /** A customer's orders, oldest first: `?limit=&continuationToken=`. */
  @Get('customers/:id/orders')
  @ApiOperation({ summary: "A customer's orders, oldest first" })
  @ApiParam({ name: 'id', description: 'The customer id' })
  @ApiQuery(LIMIT_QUERY)
  @ApiQuery(TOKEN_QUERY)
  @ApiOkResponse({ description: 'A page of orders', schema: ORDER_PAGE_SCHEMA })
  @ApiErrors(LIST_ERRORS)
  async byCustomer(@Param('id') customerId: string, @Query() query: QueryParams): Promise<OrderPageDto> {
    const params = queryParams(query, ['limit', 'continuationToken']);
    pathId('id', customerId);
    const scope = ['customer-orders', customerId];
    return toOrderPageDto(await this.orders.query({ index: BY_CUSTOMER, pk: customerId, ...pageParams(scope, params) }), scope);
  }

  /** Orders in one status, least recently changed first: `?status=open&limit=&continuationToken=`. */
  @Get('orders')
  @ApiOperation({ summary: 'Orders in one status, least recently changed first' })
  @ApiQuery({ name: 'status', required: true, enum: ORDER_STATUSES })
  @ApiQuery(LIMIT_QUERY)
  @ApiQuery(TOKEN_QUERY)
  @ApiOkResponse({ description: 'A page of orders', schema: ORDER_PAGE_SCHEMA })
  @ApiErrors({ ...LIST_ERRORS, 400: `${LIST_ERRORS[400]}; \`status\` missing or not a status` })
  async byStatus(@Query() query: QueryParams): Promise<OrderPageDto> {
    const params = queryParams(query, ['status', 'limit', 'continuationToken']);
    const status = statusParam(params.status);
    const scope = ['orders-by-status', status];
    return toOrderPageDto(await this.orders.query({ index: BY_STATUS, pk: status, ...pageParams(scope, params) }), scope);
  }

  /**
   * Runs a command for the request's actor, with its `Idempotency-Key` and `If-Match`; a command with no
   * input takes no query and at most `{}`.
   */
  private async run(command: Command<Order>, req: IncomingMessage, body?: unknown, query?: QueryParams): Promise<number> {
    if (query !== undefined) queryParams(query, []);
    if (body !== undefined) bodyFields(body, [], { required: false });
    command.actor = actorOf(req);
    const options = commandOptions(req);
    try {
      return await this.orders.apply(command, options);
    } catch (err) {
      throw commandError(err, options);
    }
  }
}

/** A body field that becomes a path id later (`orderId`, `customerId`, `sku`): `.` and `..` refused; the command checks the rest. */
function bodyId(field: string, value: unknown): void {
  if (value === '.' || value === '..') checkId(field, value);
}
