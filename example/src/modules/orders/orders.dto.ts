import { ValidationError } from 'nest-cosmos-eventstore';
import type { AggregatePage, HistoryEvent } from 'nest-cosmos-eventstore';
import type { Order, OrderLine, OrderStatus } from './order.aggregate.js';

export const ORDER_STATUSES: readonly OrderStatus[] = ['open', 'submitted', 'shipped', 'cancelled'];
const DEFAULT_PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 1000;

/** `GET /orders/:id`. */
export interface OrderDto {
  id: string;
  customerId: string;
  status: OrderStatus;
  lines: OrderLine[];
  total: number;
  version: number;
  createdAt: string;
  updatedAt: string;
}

/** `GET /customers/:id/orders` and `GET /orders?status=`. */
export interface OrderPageDto {
  items: OrderDto[];
  continuationToken?: string;
}

/** One entry of `GET /orders/:id/history`: the event's fields beside its type, version, time and actor. */
export type HistoryEventDto = { type: string; version: number; at: string; actor: string } & Record<string, unknown>;

export function toOrderDto(order: Order): OrderDto {
  const { id, customerId, status, lines, total, version, createdAt, updatedAt } = order;
  return { id, customerId, status, lines, total, version, createdAt, updatedAt };
}

export function toOrderPageDto(page: AggregatePage<Order>): OrderPageDto {
  const dto: OrderPageDto = { items: page.items.map(toOrderDto) };
  if (page.continuationToken) dto.continuationToken = page.continuationToken;
  return dto;
}

export function toHistoryEventDto({ type, version, at, actor, event }: HistoryEvent): HistoryEventDto {
  return { ...event, type, version, at: new Date(Math.floor(at / 1000)).toISOString(), actor };
}

/** A JSON object body; its fields are checked by the command they become. */
export function bodyObject(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ValidationError('body', 'must be a JSON object');
  }
  return body as Record<string, unknown>;
}

/** `?limit=&continuationToken=` of the list endpoints. */
export function pageParams(params: Record<string, unknown>): { limit: number; continuationToken?: string } {
  const { limit, continuationToken } = params;
  let size = DEFAULT_PAGE_SIZE;
  if (limit !== undefined) {
    size = typeof limit === 'string' && /^\d+$/.test(limit) ? Number(limit) : NaN;
    if (!(size >= 1 && size <= MAX_PAGE_SIZE)) throw new ValidationError('limit', `must be an integer from 1 to ${MAX_PAGE_SIZE}`);
  }
  if (continuationToken !== undefined && typeof continuationToken !== 'string') {
    throw new ValidationError('continuationToken', 'must be given once');
  }
  return continuationToken ? { limit: size, continuationToken } : { limit: size };
}

export function statusParam(value: unknown): OrderStatus {
  if (!ORDER_STATUSES.includes(value as OrderStatus)) {
    throw new ValidationError('status', `must be one of ${ORDER_STATUSES.join(', ')}`);
  }
  return value as OrderStatus;
}
