import type { SchemaObject } from '@nestjs/swagger';
import { ValidationError } from 'nest-cosmos-eventstore';
import type { AggregatePage, HistoryEvent } from 'nest-cosmos-eventstore';
import { acceptToken, issueToken, pageLimit } from '../../http/request-input.js';
import type { Order, OrderStatus } from './order.aggregate.js';
import { fromCents, LineAdded } from './order.events.js';

export const ORDER_STATUSES: readonly OrderStatus[] = ['open', 'submitted', 'shipped', 'cancelled'];

/** `GET /orders/:id`. */
export interface OrderDto {
  id: string;
  customerId: string;
  status: OrderStatus;
  /** Prices in currency units (`12.5`), as the API takes them; stored in cents. */
  lines: Array<{ sku: string; quantity: number; unitPrice: number }>;
  /** Currency units as an exact decimal string with two decimals (`"12.50"`): a number would drop cents past 2^53 of them. */
  total: string;
  version: number;
  createdAt: string;
  updatedAt: string;
}

/** `GET /customers/:id/orders` and `GET /orders?status=`. */
export interface OrderPageDto {
  items: OrderDto[];
  continuationToken?: string;
}

/**
 * One entry of `GET /orders/:id/history`: the event's fields (prices in currency units, as the API takes
 * them) beside its type, version, time, actor and metadata (absent on events stored before metadata existed).
 */
export type HistoryEventDto = {
  type: string;
  version: number;
  at: string;
  actor: string;
  eventId?: string;
  correlationId?: string;
  causationId?: string;
} & Record<string, unknown>;

export function toOrderDto(order: Order): OrderDto {
  const { id, customerId, status, lines, total, version, createdAt, updatedAt } = order;
  const shown = lines.map(({ sku, quantity, unitPriceCents }) => ({ sku, quantity, unitPrice: fromCents(unitPriceCents) }));
  return { id, customerId, status, lines: shown, total, version, createdAt, updatedAt };
}

/** A page of orders; its continuation token is bound to `scope`, the query that answered it. */
export function toOrderPageDto(page: AggregatePage<Order>, scope: readonly unknown[]): OrderPageDto {
  const dto: OrderPageDto = { items: page.items.map(toOrderDto) };
  const token = issueToken(scope, page.continuationToken);
  if (token !== undefined) dto.continuationToken = token;
  return dto;
}

export function toHistoryEventDto({ type, version, at, actor, event, eventId, correlationId, causationId }: HistoryEvent): HistoryEventDto {
  const fields = event instanceof LineAdded ? { sku: event.sku, quantity: event.quantity, unitPrice: fromCents(event.unitPriceCents) } : event;
  const dto: HistoryEventDto = { ...fields, type, version, at: new Date(Math.floor(at / 1000)).toISOString(), actor };
  if (eventId !== undefined) dto.eventId = eventId;
  if (correlationId !== undefined) dto.correlationId = correlationId;
  if (causationId !== undefined) dto.causationId = causationId;
  return dto;
}

/** `limit` and `continuationToken` of a list route (checked by `queryParams`), for the query `scope`. */
export function pageParams(
  scope: readonly unknown[],
  { limit, continuationToken }: { limit?: string; continuationToken?: string },
): { limit: number; continuationToken?: string } {
  const token = acceptToken(scope, continuationToken);
  return token === undefined ? { limit: pageLimit(limit) } : { limit: pageLimit(limit), continuationToken: token };
}

export function statusParam(value: unknown): OrderStatus {
  if (value === undefined) throw new ValidationError('status', `is required: one of ${ORDER_STATUSES.join(', ')}`);
  if (!ORDER_STATUSES.includes(value as OrderStatus)) {
    throw new ValidationError('status', `must be one of ${ORDER_STATUSES.join(', ')}`);
  }
  return value as OrderStatus;
}

// ---- The OpenAPI description of the bodies above (see http/openapi.ts) ----

/** `POST /orders`. */
export const PLACE_ORDER_BODY: SchemaObject = {
  type: 'object',
  required: ['customerId'],
  additionalProperties: false,
  properties: {
    customerId: { type: 'string', description: 'Who orders' },
    orderId: { type: 'string', description: 'The new order id; a random UUID when left out' },
  },
};

/** `POST /orders/:id/lines`. */
export const ADD_LINE_BODY: SchemaObject = {
  type: 'object',
  required: ['sku', 'quantity', 'unitPrice'],
  additionalProperties: false,
  properties: {
    sku: { type: 'string' },
    quantity: { type: 'integer', minimum: 1 },
    unitPrice: { type: 'number', description: 'In currency units (`12.5`), at most two decimals' },
  },
};

/** The body of a command without input: none, or `{}`. */
export const EMPTY_BODY: SchemaObject = { type: 'object', additionalProperties: false, description: 'No body, or `{}`' };

/** A command's answer. */
export const VERSION_SCHEMA: SchemaObject = { type: 'object', required: ['version'], properties: { version: { type: 'integer' } } };

/** `OrderDto`. */
export const ORDER_SCHEMA: SchemaObject = {
  type: 'object',
  required: ['id', 'customerId', 'status', 'lines', 'total', 'version', 'createdAt', 'updatedAt'],
  properties: {
    id: { type: 'string' },
    customerId: { type: 'string' },
    status: { type: 'string', enum: [...ORDER_STATUSES] },
    lines: {
      type: 'array',
      items: {
        type: 'object',
        required: ['sku', 'quantity', 'unitPrice'],
        properties: { sku: { type: 'string' }, quantity: { type: 'integer' }, unitPrice: { type: 'number' } },
      },
    },
    total: {
      type: 'string',
      pattern: '^\\d+\\.\\d{2}$',
      description: 'quantity × unitPrice summed over the lines, in currency units: an exact decimal with two decimals (`"12.50"`), as the statistics show money; a string, as a line alone may pass 2^53 cents',
      example: '12.50',
    },
    version: { type: 'integer' },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
};

/** `OrderPageDto`. */
export const ORDER_PAGE_SCHEMA: SchemaObject = {
  type: 'object',
  required: ['items'],
  properties: {
    items: { type: 'array', items: ORDER_SCHEMA },
    continuationToken: { type: 'string', description: 'There when more items follow: send it with the same query' },
  },
};

/** `GET /orders/:id/history`: `{ events: HistoryEventDto[] }`. */
export const HISTORY_SCHEMA: SchemaObject = {
  type: 'object',
  required: ['events'],
  properties: {
    events: {
      type: 'array',
      items: {
        type: 'object',
        description: "The event's own fields (prices in currency units) beside these",
        required: ['type', 'version', 'at', 'actor'],
        additionalProperties: true,
        properties: {
          type: { type: 'string' },
          version: { type: 'integer' },
          at: { type: 'string', format: 'date-time' },
          actor: { type: 'string' },
          eventId: { type: 'string' },
          correlationId: { type: 'string' },
          causationId: { type: 'string' },
        },
      },
    },
  },
};
