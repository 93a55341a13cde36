import { Body, Controller, Delete, Get, HttpCode, HttpStatus, Param, Post, Query, Req, Res, UseFilters, UseInterceptors } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { AggregateNotFoundError, CorrelationIdInterceptor, InjectRepository, Repository, type Command } from 'nest-cosmos-eventstore';
import { EventStoreExceptionFilter } from 'nest-cosmos-eventstore';
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
  type HistoryEventDto,
  type OrderDto,
  type OrderPageDto,
} from './orders.dto.js';

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
export class OrdersController {
  constructor(@InjectRepository(Order) private readonly orders: Repository<Order>) {}

  /**
   * `POST /orders` `{ customerId, orderId? }` → 201 `{ id, version }`; an `orderId` that exists → 409. With an
   * `Idempotency-Key` and no `orderId`, the id is derived from the key (and the actor).
   */
  @Post('orders')
  @HttpCode(HttpStatus.CREATED)
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
    return { id: command.aggregateId, version: await this.run(command, req) };
  }

  /** `POST /orders/:id/lines` `{ sku, quantity, unitPrice }`. */
  @Post('orders/:id/lines')
  @HttpCode(HttpStatus.OK)
  async addLine(@Param('id') id: string, @Body() body: unknown, @Query() query: QueryParams, @Req() req: IncomingMessage): Promise<VersionDto> {
    queryParams(query, []);
    const { sku, quantity, unitPrice } = bodyFields(body, ['sku', 'quantity', 'unitPrice']);
    bodyId('sku', sku);
    return { version: await this.run(new AddLine(pathId('id', id), sku as string, quantity as number, unitPrice as number), req) };
  }

  /** `DELETE /orders/:id/lines/:sku`; removing a line that is not there succeeds without a new version. */
  @Delete('orders/:id/lines/:sku')
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
  @HttpCode(HttpStatus.OK)
  async submit(@Param('id') id: string, @Body() body: unknown, @Query() query: QueryParams, @Req() req: IncomingMessage): Promise<VersionDto> {
    return { version: await this.run(new SubmitOrder(pathId('id', id)), req, body, query) };
  }

  @Post('orders/:id/ship')
  @HttpCode(HttpStatus.OK)
  async ship(@Param('id') id: string, @Body() body: unknown, @Query() query: QueryParams, @Req() req: IncomingMessage): Promise<VersionDto> {
    return { version: await this.run(new ShipOrder(pathId('id', id)), req, body, query) };
  }

  @Post('orders/:id/cancel')
  @HttpCode(HttpStatus.OK)
  async cancel(@Param('id') id: string, @Body() body: unknown, @Query() query: QueryParams, @Req() req: IncomingMessage): Promise<VersionDto> {
    return { version: await this.run(new CancelOrder(pathId('id', id)), req, body, query) };
  }

  /**
   * The materialized order (rebuilt from its events when materializing it failed, best effort), its version
   * as `ETag`; 304 to an `If-None-Match` naming it.
   */
  @Get('orders/:id')
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
   * `DELETE /admin/orders/:id` (admin): erases the order (the right to erasure): its materialized document,
   * then its events, tip and idempotency keys, leaving a tombstone the change feed hands to the read models.
   * 200 `{ erased: true }`; an unknown (or already erased) order → 404. The id cannot be placed again (409).
   */
  @Delete('admin/orders/:id')
  @AdminEndpoint()
  async erase(@Param('id') id: string, @Body() body: unknown, @Query() query: QueryParams): Promise<{ erased: true }> {
    queryParams(query, []);
    bodyFields(body, [], { required: false });
    if (!(await this.orders.erase(pathId('id', id)))) throw new AggregateNotFoundError(this.orders.type, id);
    return { erased: true };
  }

  /** Every event of the order, oldest first, with its `eventId`, `correlationId` and `causationId`. */
  @Get('orders/:id/history')
  async history(@Param('id') id: string, @Query() query: QueryParams): Promise<{ events: HistoryEventDto[] }> {
    queryParams(query, []);
    const events = await this.orders.history(pathId('id', id));
    if (events.length === 0) throw new AggregateNotFoundError(this.orders.type, id);
    return { events: events.map(toHistoryEventDto) };
  }

  /** A customer's orders, oldest first: `?limit=&continuationToken=`. */
  @Get('customers/:id/orders')
  async byCustomer(@Param('id') customerId: string, @Query() query: QueryParams): Promise<OrderPageDto> {
    const params = queryParams(query, ['limit', 'continuationToken']);
    pathId('id', customerId);
    const scope = ['customer-orders', customerId];
    return toOrderPageDto(await this.orders.query({ index: BY_CUSTOMER, pk: customerId, ...pageParams(scope, params) }), scope);
  }

  /** Orders in one status, least recently changed first: `?status=open&limit=&continuationToken=`. */
  @Get('orders')
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
