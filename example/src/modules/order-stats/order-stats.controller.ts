import {
  ConflictException,
  Controller,
  Get,
  HttpCode,
  HttpStatus,
  NotFoundException,
  Param,
  Post,
  ServiceUnavailableException,
  UseFilters,
} from '@nestjs/common';
import { AdminEndpoint } from '../store-api/index.js';
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

  /** `GET /order-stats`: per status `{ orders, total }`, per customer `{ orders, byStatus, revenue }`. */
  @Get('order-stats')
  async all(): Promise<Served<OrderStatsView>> {
    const [view, lag] = await Promise.all([this.stats.view(), this.fresh()]);
    return { ...view, stale: isStale(lag), lag };
  }

  /** `GET /order-stats/customers/:id`: one customer; 404 when the read model has no order of theirs. */
  @Get('order-stats/customers/:id')
  async customer(@Param('id') customerId: string): Promise<Served<CustomerStatsView>> {
    const [view, lag] = await Promise.all([this.stats.view(), this.fresh()]);
    const customer = view.customers.find((c) => c.customerId === customerId);
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
  async rebuild(): Promise<{ rebuilding: string; lag: Freshness }> {
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
