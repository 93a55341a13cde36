import { Controller, Get, Query, UseFilters } from '@nestjs/common';
import {
  EventStoreError,
  EventStoreExceptionFilter,
  eventTypeOf,
  InjectSnapshotTailStore,
  JsonEventSerializer,
  SNAPSHOT_EVENT_TYPE,
  STREAM_DELETED_TYPE,
  ValidationError,
  type EventEnvelope,
  type ReadAllItem,
  type ReadAllStore,
  type SnapshotTailStore,
} from 'nest-cosmos-eventstore';
import { ApiOkResponse, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { ApiActorHeader, ApiErrors } from '../../http/openapi.js';
import { pageLimit, queryParams, type QueryParams } from '../../http/request-input.js';
import { LineAdded, LineRemoved, OrderCancelled, OrderPlaced, OrderShipped, OrderSubmitted } from './order.events.js';

/** The orders' streams: `Order/<id>`. */
const ORDER_TYPE = 'Order';

/** The event types `GET /events?type=` takes: the order events, and an erasure's tombstone. */
export const ORDER_EVENT_TYPES: readonly string[] = [
  ...[OrderPlaced, LineAdded, LineRemoved, OrderSubmitted, OrderShipped, OrderCancelled].map((c) => eventTypeOf(c)),
  STREAM_DELETED_TYPE,
];

/** One item of `GET /events`. */
export interface EventItemDto {
  /** The order's id (its stream is `Order/<aggregateId>`). */
  aggregateId: string;
  version: number;
  type?: string;
  /** When Cosmos DB committed it (whole seconds), ISO 8601. */
  committedAt: string;
  actor?: string;
  eventId?: string;
  correlationId?: string;
  causationId?: string;
  headers?: Record<string, string>;
  /** Where the item stands: `after=<position>` reads on from the item after it. */
  position: string;
}

/** `GET /events`: a page of items, and `after` (the last item's position) while more may follow. */
export interface EventPageDto {
  items: EventItemDto[];
  after?: string;
}

const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,9})?)?(Z|[+-]\d\d:\d\d)$/;

/**
 * The orders' events across orders, by commit time (`readAll` of the event store: one cross-partition
 * query on the events container, filtered by the indexed type field `y`, whose cost grows with the events
 * it returns, not with the streams): `GET /events?type=&since=&limit=&after=`.
 */
const EVENT_ITEM_SCHEMA = {
  type: 'object',
  required: ['aggregateId', 'version', 'committedAt', 'position'],
  properties: {
    aggregateId: { type: 'string' },
    version: { type: 'integer' },
    type: { type: 'string' },
    committedAt: { type: 'string', format: 'date-time' },
    actor: { type: 'string' },
    eventId: { type: 'string' },
    correlationId: { type: 'string' },
    causationId: { type: 'string' },
    headers: { type: 'object', additionalProperties: { type: 'string' } },
    position: { type: 'string' },
  },
};

@Controller('events')
@UseFilters(EventStoreExceptionFilter)
@ApiTags('events')
@ApiActorHeader()
export class EventsController {
  private readonly serializer = new JsonEventSerializer();

  constructor(@InjectSnapshotTailStore() private readonly store: SnapshotTailStore) {}

  /**
   * `type` (one of the order event types, or `$stream-deleted`), `since` (an ISO 8601 time with a zone),
   * `limit` (1 to 1000, default 50), `after` (the `after` of the previous page); each optional, each a 400
   * naming it when malformed. Items oldest first.
   */
  @Get()
  @ApiOperation({ summary: "The orders' events across orders, by commit time" })
  @ApiQuery({ name: 'type', required: false, description: 'An order event type, or `$stream-deleted`', schema: { type: 'string', enum: [...ORDER_EVENT_TYPES] } })
  @ApiQuery({ name: 'since', required: false, description: 'An ISO 8601 time with a zone: events committed at or after it', schema: { type: 'string', format: 'date-time' } })
  @ApiQuery({ name: 'limit', required: false, description: '1 to 1000, default 50', schema: { type: 'integer', minimum: 1, maximum: 1000 } })
  @ApiQuery({ name: 'after', required: false, description: 'The `after` of the previous page', schema: { type: 'string' } })
  @ApiOkResponse({
    description: 'A page of events, oldest first; `after` while more may follow',
    schema: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: EVENT_ITEM_SCHEMA }, after: { type: 'string' } } },
  })
  @ApiErrors({ 503: 'Cosmos DB is unavailable; retry later' })
  async list(@Query() query: QueryParams): Promise<EventPageDto> {
    const params = queryParams(query, ['type', 'since', 'limit', 'after']);
    if (params.type !== undefined && !ORDER_EVENT_TYPES.includes(params.type)) {
      throw new ValidationError('type', `must be one of ${ORDER_EVENT_TYPES.join(', ')}`);
    }
    let since: Date | undefined;
    if (params.since !== undefined) {
      since = new Date(params.since);
      if (!ISO_TIME.test(params.since) || Number.isNaN(since.getTime())) {
        throw new ValidationError('since', 'must be an ISO 8601 time with a zone, e.g. 2026-01-31T12:00:00Z');
      }
    }
    const limit = pageLimit(params.limit);
    const store = this.store as Partial<ReadAllStore>;
    if (typeof store.readAll !== 'function') throw new EventStoreError('the event store cannot read across streams');
    const items: EventItemDto[] = [];
    let more = false;
    const read = store.readAll({
      aggregateType: ORDER_TYPE,
      ...(params.type !== undefined && { types: [params.type] }),
      ...(since && { since }),
      ...(params.after !== undefined && { after: params.after }),
      pageSize: Math.min(limit + 1, 1000),
    });
    for await (const item of read) {
      const dto = this.toDto(item);
      if (!dto) continue;
      if (items.length === limit) {
        more = true;
        break;
      }
      items.push(dto);
    }
    const page: EventPageDto = { items };
    if (more) page.after = items[items.length - 1].position;
    return page;
  }

  /** The item as listed; `undefined` for a snapshot record (not an event). */
  private toDto({ aggregateId, record, committedAt, position }: ReadAllItem): EventItemDto | undefined {
    const dto: EventItemDto = { aggregateId: aggregateId.slice(ORDER_TYPE.length + 1), version: record.version, committedAt: committedAt.toISOString(), position };
    let envelope: EventEnvelope | undefined;
    if (record.data.length > 0) {
      try {
        envelope = this.serializer.deserialize(record.data);
      } catch {
        // Not an envelope (a raw record): listed with what the store knows of it.
      }
    }
    const type = record.type ?? envelope?.type;
    if (type === SNAPSHOT_EVENT_TYPE) return undefined;
    if (type !== undefined) dto.type = type;
    if (envelope) {
      dto.actor = envelope.actor;
      if (envelope.eventId !== undefined) dto.eventId = envelope.eventId;
      if (envelope.correlationId !== undefined) dto.correlationId = envelope.correlationId;
      if (envelope.causationId !== undefined) dto.causationId = envelope.causationId;
      if (envelope.headers !== undefined) dto.headers = envelope.headers;
    }
    return dto;
  }
}
