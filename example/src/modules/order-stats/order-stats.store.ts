import { Injectable } from '@nestjs/common';
import { setTimeout as delay } from 'node:timers/promises';
import type { Container, OperationInput } from '@azure/cosmos';
import {
  classifyBatchFailure,
  DEFAULT_STORE_RETRY_OPTIONS,
  EventStoreError,
  eventTypeOf,
  InjectAggregatesContainer,
  retryTransient,
  statusOf,
  ValidationError,
} from 'nest-cosmos-eventstore';
import { LineAdded, LineRemoved, OrderCancelled, OrderPlaced, OrderShipped, OrderSubmitted, type OrderStatus } from '../orders/index.js';
import {
  centsToAmount,
  countersDelta,
  nextOrderRow,
  readCents,
  STATUSES,
  type CustomerRow,
  type OrderEventEnvelope,
  type OrderEventTypes,
  type OrderRow,
  type StatusRow,
} from './order-stats.model.js';

/** The partition of the aggregates container that holds the whole read model, so one batch updates it atomically. */
export const ORDER_STATS_PARTITION = 'projection/order-stats';
/** Longest pause between two attempts at one event after a conflict with a concurrent update. */
const MAX_CONFLICT_DELAY_MS = 1_000;
// Statuses of a batch operation that say "not now" rather than "no".
const TRANSIENT_OPERATION_STATUSES = new Set([408, 449, 503]);

export const ORDER_EVENT_TYPES: OrderEventTypes = {
  placed: eventTypeOf(OrderPlaced),
  lineAdded: eventTypeOf(LineAdded),
  lineRemoved: eventTypeOf(LineRemoved),
  submitted: eventTypeOf(OrderSubmitted),
  shipped: eventTypeOf(OrderShipped),
  cancelled: eventTypeOf(OrderCancelled),
};

/**
 * The read model as served: money in currency units as exact decimal strings with two decimals (`"0.10"`),
 * from integer cents; customers one page at a time.
 */
export interface OrderStatsView {
  byStatus: Record<OrderStatus, { orders: number; total: string }>;
  customers: CustomerStatsView[];
  /** The store's token for the next page of customers; absent on the last page. */
  continuationToken?: string;
}

/** One customer's orders per status and revenue (an exact decimal string). */
export interface CustomerStatsView {
  customerId: string;
  orders: number;
  byStatus: Record<OrderStatus, number>;
  revenue: string;
}

/** A read-model document, shaped like every document of the aggregates container (SPEC §4). */
interface StatsDocument {
  id: string;
  pk: string;
  sk: string;
  body: string;
  _etag?: string;
}

interface Stored<T> {
  row: T;
  etag: string;
}

/**
 * The order statistics read model in the aggregates container: one document per order (what the counters
 * need of it, and the last version applied), per status and per customer, all in one partition. Each event
 * is applied in one transactional batch with ETag checks, so concurrent readers of other feed ranges never
 * lose an update, and an event delivered twice is applied once.
 *
 * Faults: every read is retried on transient failures (408, 449, 503, timeouts, lost connections, answers
 * cut mid-body) as the event store retries its own (`DEFAULT_STORE_RETRY_OPTIONS`), so the subscriber's
 * attempts at an event are not spent on faults one more request would have fixed. A batch that failed
 * transiently may have been applied all the same (a lost acknowledgement): it is never resent as it was,
 * the event is worked out again from fresh reads, which find the order row at the event's version when it
 * was. Retries running out give an `EventStoreError` with the last failure as `cause`, which
 * `EventStoreExceptionFilter` answers with 503.
 */
@Injectable()
export class OrderStatsStore {
  private readonly retries = { ...DEFAULT_STORE_RETRY_OPTIONS };

  constructor(@InjectAggregatesContainer() private readonly container: Container) {}

  /**
   * Applies one event. A conflict (412/409) means another reader's update got in first: that one made progress,
   * so this one is read again and retried, with jittered backoff, for as long as it takes (a small cap would
   * dead-letter the event under contention and the counters would drift for good); only `signal` (the reader
   * is stopping) ends the retries, leaving the event to be delivered again. A transient failure of the batch
   * is retried the same way, from fresh reads, up to the store's attempts. `'duplicate'` also answers an
   * event whose batch was applied although its answer was lost.
   */
  async apply(event: OrderEventEnvelope, signal?: AbortSignal): Promise<'applied' | 'duplicate'> {
    const what = `order-stats: applying ${event.type} of ${event.aggregateId}@${event.version}`;
    let transientFailures = 0;
    for (let attempt = 1; ; attempt++) {
      // The first attempt always runs (a graceful stop finishes the page in hand); only retries end on stop.
      if (attempt > 1) signal?.throwIfAborted();
      const orderSk = `order/${event.aggregateId}`;
      const order = await this.read<OrderRow>(orderSk, signal);
      if (order && event.version <= order.row.version) return 'duplicate';
      const after = nextOrderRow(order?.row, event, ORDER_EVENT_TYPES);
      if (!after) return 'duplicate';
      const delta = countersDelta(order?.row, after);
      const operations: OperationInput[] = [this.write(orderSk, order, after)];
      for (const [status, change] of delta.statuses) {
        const sk = `status/${status}`;
        const current = await this.read<StatusRow>(sk, signal);
        const row = current?.row ?? { status, orders: 0, cents: '0' };
        const cents = (readCents(row.cents) + change.cents).toString();
        operations.push(this.write(sk, current, { ...row, orders: row.orders + change.orders, cents }));
      }
      const { customer } = delta;
      if (customer.orders !== 0 || customer.revenueCents !== 0n || Object.keys(customer.statuses).length > 0) {
        const sk = `customer/${after.customerId}`;
        const current = await this.read<CustomerRow>(sk, signal);
        const row = current?.row ?? { customerId: after.customerId, orders: 0, statuses: zeroStatuses(), revenueCents: '0' };
        const statuses = { ...row.statuses };
        for (const [status, n] of Object.entries(customer.statuses)) statuses[status as OrderStatus] += n;
        const revenueCents = (readCents(row.revenueCents) + customer.revenueCents).toString();
        operations.push(this.write(sk, current, { ...row, orders: row.orders + customer.orders, statuses, revenueCents }));
      }
      let statuses: number[];
      try {
        const response = await this.container.items.batch(operations, ORDER_STATS_PARTITION);
        statuses = (response.result ?? []).map((r) => r.statusCode);
      } catch (err) {
        // Applied or not, the next attempt's reads tell: the order row holds the version it was applied at.
        if (!classifyBatchFailure(err).transient || ++transientFailures >= this.retries.maxAttempts) {
          throw new EventStoreError(`${what} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
        }
        await this.backoff(transientFailures, signal);
        continue;
      }
      if (statuses.length === operations.length && statuses.every((s) => s < 400)) return 'applied';
      // Another reader changed one of the documents since they were read (412), or created it first (409):
      // read again after a short random pause, so readers contending for the same counters spread out.
      if (statuses.some((s) => s === 412 || s === 409)) {
        await delay(Math.random() * Math.min(MAX_CONFLICT_DELAY_MS, 5 * 2 ** Math.min(attempt, 10)), undefined, { signal }).catch(() => undefined);
        continue;
      }
      if (statuses.some((s) => TRANSIENT_OPERATION_STATUSES.has(s)) && ++transientFailures < this.retries.maxAttempts) {
        await this.backoff(transientFailures, signal);
        continue;
      }
      throw new EventStoreError(`${what} failed (${statuses.join(', ')})`);
    }
  }

  /**
   * The counters per status and one page of customers, by customer id (code unit order): `limit` rows from
   * where `continuationToken` (the store's own, from the previous page) left off.
   */
  async view(page: { limit: number; continuationToken?: string } = { limit: 1000 }): Promise<OrderStatsView> {
    const [byStatus, customers] = await Promise.all([this.statuses(), this.customers(page)]);
    return { byStatus, ...customers };
  }

  /** The four status counters: one query over their documents. */
  async statuses(): Promise<OrderStatsView['byStatus']> {
    const { resources } = await retryTransient('order-stats: reading the status counters', this.retries, undefined, () =>
      this.container.items
        .query<StatsDocument>(
          { query: 'SELECT * FROM c WHERE STARTSWITH(c.sk, @prefix)', parameters: [{ name: '@prefix', value: 'status/' }] },
          { partitionKey: ORDER_STATS_PARTITION },
        )
        .fetchAll(),
    );
    const byStatus = Object.fromEntries(STATUSES.map((s) => [s, { orders: 0, total: centsToAmount(0n) }])) as OrderStatsView['byStatus'];
    for (const doc of resources) {
      const row = decode<StatusRow>(doc.body);
      byStatus[row.status] = { orders: row.orders, total: centsToAmount(readCents(row.cents)) };
    }
    return byStatus;
  }

  /** One page of customers, ordered by their row's sort key. */
  async customers({ limit, continuationToken }: { limit: number; continuationToken?: string }): Promise<Pick<OrderStatsView, 'customers' | 'continuationToken'>> {
    const { resources, continuationToken: next } = await retryTransient('order-stats: reading customers', this.retries, undefined, () =>
      this.container.items
        .query<StatsDocument>(
          { query: 'SELECT * FROM c WHERE STARTSWITH(c.sk, @prefix) ORDER BY c.sk', parameters: [{ name: '@prefix', value: 'customer/' }] },
          { partitionKey: ORDER_STATS_PARTITION, maxItemCount: limit, ...(continuationToken !== undefined && { continuationToken }) },
        )
        .fetchNext(),
    ).catch((err: unknown) => {
      // Cosmos DB refuses a continuation token it cannot read with 400, and Node one that cannot be sent as
      // a header (ERR_INVALID_CHAR): the client's input either way, not a failure.
      const cause = (err as { cause?: unknown }).cause ?? err;
      const unsendable = (cause as { code?: unknown }).code === 'ERR_INVALID_CHAR' || (err as { code?: unknown }).code === 'ERR_INVALID_CHAR';
      if (continuationToken !== undefined && (unsendable || statusOf(cause) === 400)) throw new ValidationError('continuationToken', 'is not a token of this query');
      throw err;
    });
    const customers = resources.map((doc) => customerView(decode<CustomerRow>(doc.body)));
    return next ? { customers, continuationToken: next } : { customers };
  }

  /** One customer's counters: one point read; `undefined` when the read model has no order of theirs. */
  async customer(customerId: string): Promise<CustomerStatsView | undefined> {
    const stored = await this.read<CustomerRow>(`customer/${customerId}`);
    return stored && customerView(stored.row);
  }

  /** Deletes the whole read model (before a rebuild). */
  async clear(): Promise<void> {
    const what = 'order-stats: clearing the read model';
    const { resources } = await retryTransient(what, this.retries, undefined, () =>
      this.container.items
        .query<{ id: string }>({ query: 'SELECT c.id FROM c', parameters: [] }, { partitionKey: ORDER_STATS_PARTITION })
        .fetchAll(),
    );
    for (let i = 0; i < resources.length; i += 100) {
      const ids = resources.slice(i, i + 100).map(({ id }) => id);
      for (let failures = 0; ; ) {
        const deletes: OperationInput[] = ids.map((id) => ({ operationType: 'Delete', id }));
        let results;
        try {
          results = (await this.container.items.batch(deletes, ORDER_STATS_PARTITION)).result ?? [];
        } catch (err) {
          // Deleting again is harmless: what an applied attempt deleted answers 404 the next time.
          if (!classifyBatchFailure(err).transient || ++failures >= this.retries.maxAttempts) {
            throw new EventStoreError(`${what} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
          }
          await this.backoff(failures);
          continue;
        }
        const failed = results.filter((r) => r.statusCode >= 400 && r.statusCode !== 404);
        if (failed.length === 0) break;
        if (failed.some((r) => TRANSIENT_OPERATION_STATUSES.has(r.statusCode)) && ++failures < this.retries.maxAttempts) {
          await this.backoff(failures);
          continue;
        }
        throw new EventStoreError(`${what} failed (${failed.map((r) => r.statusCode).join(', ')})`);
      }
    }
  }

  private async read<T>(sk: string, signal?: AbortSignal): Promise<Stored<T> | undefined> {
    // The signal ends the waits between retries only: a request in flight finishes (a graceful stop).
    const { resource } = await retryTransient(`order-stats: reading ${sk}`, this.retries, signal, () =>
      this.container.item(documentId(sk), ORDER_STATS_PARTITION).read<StatsDocument>(),
    );
    return resource?._etag ? { row: decode<T>(resource.body), etag: resource._etag } : undefined;
  }

  /** The wait before transient retry `n` (from 1): exponential from the store's initial delay, capped, jittered. */
  private async backoff(n: number, signal?: AbortSignal): Promise<void> {
    const cap = Math.min(this.retries.maxDelayMs, this.retries.initialDelayMs * 2 ** (n - 1));
    await delay(cap / 2 + Math.random() * (cap / 2), undefined, { signal });
  }

  /** A Create for a document not there yet (409 if another reader was first), else a Replace on its ETag. */
  private write(sk: string, current: Stored<unknown> | undefined, row: unknown): OperationInput {
    const resourceBody: StatsDocument = {
      id: documentId(sk),
      pk: ORDER_STATS_PARTITION,
      sk,
      body: Buffer.from(JSON.stringify(row), 'utf8').toString('base64'),
    };
    return current
      ? { operationType: 'Replace', id: resourceBody.id, resourceBody: { ...resourceBody }, ifMatch: current.etag }
      : { operationType: 'Create', resourceBody: { ...resourceBody } };
  }
}

function customerView(row: CustomerRow): CustomerStatsView {
  return { customerId: row.customerId, orders: row.orders, byStatus: row.statuses, revenue: centsToAmount(readCents(row.revenueCents)) };
}

function zeroStatuses(): Record<OrderStatus, number> {
  return Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<OrderStatus, number>;
}

function decode<T>(body: string): T {
  return JSON.parse(Buffer.from(body, 'base64').toString('utf8')) as T;
}

/** The document id of a sort key, as SPEC §4 derives it: `/ \ ? # %` percent-encoded. */
function documentId(sk: string): string {
  return sk.replace(/[/\\?#%]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}
