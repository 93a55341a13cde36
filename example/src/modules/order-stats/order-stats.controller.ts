import {
  Body,
  ConflictException,
  Controller,
  Get,
  HttpCode,
  HttpStatus,
  NotFoundException,
  Param,
  Post,
  Query,
  ServiceUnavailableException,
  UseFilters,
} from '@nestjs/common';
import { ApiAcceptedResponse, ApiBearerAuth, ApiOkResponse, ApiOperation, ApiParam, ApiQuery, ApiTags, type SchemaObject } from '@nestjs/swagger';
import { AdminEndpoint } from '../store-api/index.js';
import { ApiActorHeader, ApiErrors, errorSchema } from '../../http/openapi.js';
import { ORDER_STATUSES } from '../orders/orders.dto.js';
import { acceptToken, bodyFields, issueToken, pageLimit, pathId, queryParams, type QueryParams } from '../../http/request-input.js';
import {
  DEFAULT_STORE_RETRY_OPTIONS,
  EventStoreExceptionFilter,
  InjectSubscriptions,
  RebuildInProgressError,
  retryTransient,
  type Subscriptions,
} from 'nest-cosmos-eventstore';
import { ORDER_STATS_SUBSCRIBER } from './order-stats.projection.js';
import { OrderStatsStore, type CustomerStatsView, type OrderStatsView } from './order-stats.store.js';

/** What the continuation tokens of `GET /order-stats` are bound to. */
const STATS_SCOPE = ['order-stats'] as const;

/** How far the read model is behind the events, with every answer. */
interface Freshness {
  state: string;
  estimatedPending: number;
  behindMs: number;
  /** Why the subscriber stopped, when it did. */
  reason?: string;
  /** Who stopped it: a handler's failure, or an operator. */
  stoppedBy?: 'failure' | 'operator';
}

/** `stale`: events are known not to be counted yet (some pending, or a rebuild refilling the counters). */
type Served<T> = T & { stale: boolean; lag: Freshness };

// ---- The OpenAPI description of the answers above (see http/openapi.ts) ----

const FRESHNESS_SCHEMA: SchemaObject = {
  type: 'object',
  required: ['state', 'estimatedPending', 'behindMs'],
  properties: {
    state: { type: 'string', enum: ['running', 'rebuilding', 'stopped', 'not-started'] },
    estimatedPending: { type: 'integer', description: 'Events not counted yet (an estimate)' },
    behindMs: { type: 'integer', description: 'Milliseconds since the oldest event not counted yet was committed' },
    reason: { type: 'string', description: 'Why the subscriber stopped, when it did' },
    stoppedBy: { type: 'string', enum: ['failure', 'operator'], description: 'Who stopped it, when it is stopped' },
  },
};

const PER_STATUS = <T extends SchemaObject>(value: T): SchemaObject => ({
  type: 'object',
  required: [...ORDER_STATUSES],
  properties: Object.fromEntries(ORDER_STATUSES.map((status) => [status, value])),
});

const CUSTOMER_SCHEMA: SchemaObject = {
  type: 'object',
  required: ['customerId', 'orders', 'byStatus', 'revenue'],
  properties: {
    customerId: { type: 'string' },
    orders: { type: 'integer' },
    byStatus: PER_STATUS({ type: 'integer' }),
    revenue: { type: 'string', description: 'Totals of submitted and shipped orders, an exact decimal' },
  },
};

const STATS_SCHEMA: SchemaObject = {
  type: 'object',
  required: ['byStatus', 'customers'],
  properties: {
    byStatus: PER_STATUS({
      type: 'object',
      required: ['orders', 'total'],
      properties: { orders: { type: 'integer' }, total: { type: 'string', description: 'An exact decimal' } },
    }),
    customers: { type: 'array', items: CUSTOMER_SCHEMA },
    continuationToken: { type: 'string', description: 'There when more customers follow' },
  },
};

/** `Served<T>`: the view, `stale` and `lag`. */
function served(view: SchemaObject): SchemaObject {
  return {
    ...view,
    required: [...(view.required ?? []), 'stale', 'lag'],
    properties: {
      ...view.properties,
      stale: { type: 'boolean', description: 'Some events are known not to be counted yet' },
      lag: FRESHNESS_SCHEMA,
    },
  };
}

/** What a read of the statistics can answer besides them. */
const READ_ERRORS = {
  503: {
    description:
      'The subscriber stopped on a failure or by an operator: the statistics are stale until an admin resumes it (`lag` says why); or Cosmos DB is unavailable (no `lag`)',
    schema: errorSchema(503, { lag: FRESHNESS_SCHEMA }),
  },
} as const;

/**
 * The order statistics read model: counts and totals per status, orders and revenue per customer (revenue:
 * totals of submitted and shipped orders). Eventually consistent: `lag` says how far behind it is, `stale`
 * whether some events are not counted yet. When the subscriber has stopped on a failure the numbers will not
 * catch up by themselves: every read answers 503 (with the lag and the reason) until an admin resumes it.
 * When Cosmos DB stays unavailable through the retries, 503 `{ statusCode, error, message }` as the other routes.
 */
@Controller()
@UseFilters(EventStoreExceptionFilter)
@ApiTags('order statistics')
@ApiActorHeader()
export class OrderStatsController {
  constructor(
    private readonly stats: OrderStatsStore,
    @InjectSubscriptions() private readonly subscriptions: Subscriptions,
  ) {}

  /**
   * `GET /order-stats?limit=&continuationToken=`: per status `{ orders, total }`, and one page of customers
   * `{ customerId, orders, byStatus, revenue }` by customer id (`limit` 1-1000, default 50); money as exact
   * decimal strings. `continuationToken` is there when more customers follow.
   */
  @Get('order-stats')
  @ApiOperation({ summary: 'Counts and totals per status, and one page of customers' })
  @ApiQuery({ name: 'limit', required: false, description: 'Customers per page, 1-1000 (default 50)', schema: { type: 'integer', minimum: 1, maximum: 1000 } })
  @ApiQuery({ name: 'continuationToken', required: false, description: 'From the previous page', type: String })
  @ApiOkResponse({ description: 'The statistics, with their lag', schema: served(STATS_SCHEMA) })
  @ApiErrors({ ...READ_ERRORS, 400: 'Invalid input, `field` names it: `limit`, a `continuationToken` this service did not issue, an unknown, repeated or empty parameter, `x-actor`' })
  async all(@Query() query: QueryParams): Promise<Served<OrderStatsView>> {
    const params = queryParams(query, ['limit', 'continuationToken']);
    const page = { limit: pageLimit(params.limit), continuationToken: acceptToken(STATS_SCOPE, params.continuationToken) };
    const [view, lag] = await Promise.all([this.stats.view(page), this.fresh()]);
    const { continuationToken, ...rest } = view;
    const token = issueToken(STATS_SCOPE, continuationToken);
    return { ...rest, ...(token !== undefined && { continuationToken: token }), stale: isStale(lag), lag };
  }

  /** `GET /order-stats/customers/:id`: one customer (one point read); 404 when the read model has no order of theirs. */
  @Get('order-stats/customers/:id')
  @ApiOperation({ summary: "One customer's statistics" })
  @ApiParam({ name: 'id', description: 'The customer id' })
  @ApiOkResponse({ description: "The customer's statistics, with their lag", schema: served(CUSTOMER_SCHEMA) })
  @ApiErrors({ ...READ_ERRORS, 404: 'No order of this customer in the statistics (yet)' })
  async customer(@Param('id') customerId: string, @Query() query: QueryParams): Promise<Served<CustomerStatsView>> {
    queryParams(query, []);
    pathId('id', customerId);
    const [customer, lag] = await Promise.all([this.stats.customer(customerId), this.fresh()]);
    if (!customer) throw new NotFoundException(`no orders of customer ${JSON.stringify(customerId)} in the statistics (yet)`);
    return { ...customer, stale: isStale(lag), lag };
  }

  /**
   * `POST /admin/projections/order-stats/rebuild`: empties the read model and replays every event into it,
   * on whichever instances read the feed. Answers 202 once the replay has started; `lag` tells its progress.
   * One rebuild at a time across every instance: a request while one runs answers 409 naming it.
   * An admin action: the service guards it with `ADMIN_TOKEN` (`AdminTokenGuard`); elsewhere, guard it yourself.
   */
  @Post('admin/projections/order-stats/rebuild')
  @AdminEndpoint()
  @HttpCode(HttpStatus.ACCEPTED)
  @ApiOperation({ summary: 'Empty the read model and replay every event into it (an admin action)' })
  @ApiBearerAuth('admin')
  @ApiAcceptedResponse({
    description: 'The replay has started; `lag` tells its progress',
    schema: { type: 'object', required: ['rebuilding', 'lag'], properties: { rebuilding: { type: 'string' }, lag: FRESHNESS_SCHEMA } },
  })
  @ApiErrors(
    {
      409: {
        description: 'A rebuild is already running (started here or on another instance): `rebuilding` names it',
        schema: errorSchema(409, {
          rebuilding: {
            type: 'object',
            required: ['subscriber', 'instance', 'startedAt'],
            properties: { subscriber: { type: 'string' }, instance: { type: 'string' }, startedAt: { type: 'string', format: 'date-time' } },
          },
        }),
      },
      503: 'Cosmos DB is unavailable; retry later',
    },
    { admin: true, body: true },
  )
  async rebuild(@Body() body: unknown, @Query() query: QueryParams): Promise<{ rebuilding: string; lag: Freshness }> {
    queryParams(query, []);
    bodyFields(body, [], { required: false });
    try {
      await this.subscriptions.rebuild(ORDER_STATS_SUBSCRIBER, { from: 'beginning' });
    } catch (err) {
      if (err instanceof RebuildInProgressError) {
        throw new ConflictException({
          statusCode: HttpStatus.CONFLICT,
          error: 'Conflict',
          message: err.message,
          rebuilding: { subscriber: err.subscriber, instance: err.holder, startedAt: err.startedAt.toISOString() },
        });
      }
      throw err;
    }
    return { rebuilding: ORDER_STATS_SUBSCRIBER, lag: await this.lag() };
  }

  /** The lag, or a 503 when the subscriber has stopped: its numbers are stale until someone acts. */
  private async fresh(): Promise<Freshness> {
    const lag = await this.lag();
    if (lag.state === 'stopped') {
      throw new ServiceUnavailableException({
        statusCode: HttpStatus.SERVICE_UNAVAILABLE,
        error: 'Service Unavailable',
        message:
          lag.stoppedBy === 'operator'
            ? `the order statistics are stale: subscriber ${ORDER_STATS_SUBSCRIBER} was stopped by an operator (${lag.reason ?? 'no reason given'}); ` +
              `they are fresh again once it is resumed`
            : `the order statistics are stale: subscriber ${ORDER_STATS_SUBSCRIBER} stopped on a failure; ` +
              `see GET /admin/subscriptions/${ORDER_STATS_SUBSCRIBER}/dead-letters, then resume it`,
        lag,
      });
    }
    return lag;
  }

  private async lag(): Promise<Freshness> {
    // The lag reads the leases and probes the change feed: retried as the read model's own reads are.
    const [lag] = await retryTransient('order-stats: reading the lag', DEFAULT_STORE_RETRY_OPTIONS, undefined, () =>
      this.subscriptions.lag(ORDER_STATS_SUBSCRIBER),
    );
    const freshness: Freshness = { state: lag.state, estimatedPending: lag.estimatedPending, behindMs: lag.behindMs };
    if (lag.reason !== undefined) freshness.reason = lag.reason;
    if (lag.stoppedBy !== undefined) freshness.stoppedBy = lag.stoppedBy;
    return freshness;
  }
}

function isStale(lag: Freshness): boolean {
  return lag.state !== 'running' || lag.estimatedPending > 0;
}
