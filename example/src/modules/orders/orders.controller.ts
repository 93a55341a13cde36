import { Body, Controller, Delete, Get, Headers, HttpCode, HttpStatus, Param, Post, Query, UseFilters } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { AggregateNotFoundError, InjectRepository, Repository, type Command } from 'nest-cosmos-eventstore';
import { EventStoreExceptionFilter } from 'nest-cosmos-eventstore';
import { Order } from './order.aggregate.js';
import { AddLine, CancelOrder, PlaceOrder, RemoveLine, ShipOrder, SubmitOrder } from './order.commands.js';
import {
  bodyObject,
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
 * does not allow → 409, invalid input → 400 (malformed) or 422 (refused by the command). The `x-actor`
 * header names who acts (default `anonymous`); it is stored with each event.
 */
@Controller()
@UseFilters(EventStoreExceptionFilter)
export class OrdersController {
  constructor(@InjectRepository(Order) private readonly orders: Repository<Order>) {}

  /** `POST /orders` `{ customerId, orderId? }` → 201 `{ id, version }`; an `orderId` that exists → 409. */
  @Post('orders')
  @HttpCode(HttpStatus.CREATED)
  async place(@Body() body: unknown, @Headers('x-actor') actor?: string): Promise<{ id: string; version: number }> {
    const { customerId, orderId = randomUUID() } = bodyObject(body);
    const command = new PlaceOrder(orderId as string, customerId as string);
    return { id: command.aggregateId, version: await this.run(command, actor) };
  }

  /** `POST /orders/:id/lines` `{ sku, quantity, unitPrice }`. */
  @Post('orders/:id/lines')
  @HttpCode(HttpStatus.OK)
  async addLine(@Param('id') id: string, @Body() body: unknown, @Headers('x-actor') actor?: string): Promise<VersionDto> {
    const { sku, quantity, unitPrice } = bodyObject(body);
    return { version: await this.run(new AddLine(id, sku as string, quantity as number, unitPrice as number), actor) };
  }

  /** `DELETE /orders/:id/lines/:sku`; removing a line that is not there succeeds without a new version. */
  @Delete('orders/:id/lines/:sku')
  async removeLine(@Param('id') id: string, @Param('sku') sku: string, @Headers('x-actor') actor?: string): Promise<VersionDto> {
    return { version: await this.run(new RemoveLine(id, sku), actor) };
  }

  @Post('orders/:id/submit')
  @HttpCode(HttpStatus.OK)
  async submit(@Param('id') id: string, @Headers('x-actor') actor?: string): Promise<VersionDto> {
    return { version: await this.run(new SubmitOrder(id), actor) };
  }

  @Post('orders/:id/ship')
  @HttpCode(HttpStatus.OK)
  async ship(@Param('id') id: string, @Headers('x-actor') actor?: string): Promise<VersionDto> {
    return { version: await this.run(new ShipOrder(id), actor) };
  }

  @Post('orders/:id/cancel')
  @HttpCode(HttpStatus.OK)
  async cancel(@Param('id') id: string, @Headers('x-actor') actor?: string): Promise<VersionDto> {
    return { version: await this.run(new CancelOrder(id), actor) };
  }

  /** The materialized order; rebuilt from its events when materializing it failed (best effort). */
  @Get('orders/:id')
  async get(@Param('id') id: string): Promise<OrderDto> {
    try {
      return toOrderDto(await this.orders.get(id));
    } catch (err) {
      if (!(err instanceof AggregateNotFoundError)) throw err;
      const order = await this.orders.load(id);
      if (order.version === 0) throw err;
      return toOrderDto(order);
    }
  }

  /** Every event of the order, oldest first. */
  @Get('orders/:id/history')
  async history(@Param('id') id: string): Promise<{ events: HistoryEventDto[] }> {
    const events = await this.orders.history(id);
    if (events.length === 0) throw new AggregateNotFoundError(this.orders.type, id);
    return { events: events.map(toHistoryEventDto) };
  }

  /** A customer's orders, oldest first: `?limit=&continuationToken=`. */
  @Get('customers/:id/orders')
  async byCustomer(@Param('id') customerId: string, @Query() params: Record<string, unknown>): Promise<OrderPageDto> {
    return toOrderPageDto(await this.orders.query({ index: BY_CUSTOMER, pk: customerId, ...pageParams(params) }));
  }

  /** Orders in one status, least recently changed first: `?status=open&limit=&continuationToken=`. */
  @Get('orders')
  async byStatus(@Query() params: Record<string, unknown>): Promise<OrderPageDto> {
    return toOrderPageDto(await this.orders.query({ index: BY_STATUS, pk: statusParam(params.status), ...pageParams(params) }));
  }

  private run(command: Command<Order>, actor: string | undefined): Promise<number> {
    command.actor = actor?.trim() || 'anonymous';
    return this.orders.apply(command);
  }
}
