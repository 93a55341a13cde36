import {
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
import { AdminEndpoint } from '../store-api/index.js';
import { acceptToken, issueToken, pageLimit, pathId, queryParams, type QueryParams } from '../../http/request-input.js';
import {
  DEFAULT_STORE_RETRY_OPTIONS,
  EventStoreExceptionFilter,
  InjectSubscriptions,
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
}

/** `stale`: events are known not to be counted yet (some pending, or a rebuild refilling the counters). */
type Served<T> = T & { stale: boolean; lag: Freshness };

/**
 * The order statistics read model: counts and totals per status, orders and revenue per customer (revenue:
 * totals of submitted and shipped orders). Eventually consistent: `lag` says how far behind it is, `stale`
 * whether some events are not counted yet. When the subscriber has stopped on a failure the numbers will not
 * catch up by themselves: every read answers 503 (with the lag and the reason) until an admin resumes it.
 * When Cosmos DB stays unavailable through the retries, 503 `{ statusCode, error, message }` as the other routes.
 */
@Controller()
@UseFilters(EventStoreExceptionFilter)
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
   * An admin action: the service guards it with `ADMIN_TOKEN` (`AdminTokenGuard`); elsewhere, guard it yourself.
   */
  @Post('admin/projections/order-stats/rebuild')
  @AdminEndpoint()
  @HttpCode(HttpStatus.ACCEPTED)
  async rebuild(): Promise<{ rebuilding: string; lag: Freshness }> {
    await this.subscriptions.rebuild(ORDER_STATS_SUBSCRIBER, { from: 'beginning' });
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
          `the order statistics are stale: subscriber ${ORDER_STATS_SUBSCRIBER} stopped on a failure; ` +
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
    return freshness;
  }
}

function isStale(lag: Freshness): boolean {
  return lag.state !== 'running' || lag.estimatedPending > 0;
}
