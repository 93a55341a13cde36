import { eventTypeOf, JsonEventSerializer } from 'nest-cosmos-eventstore';
import { OnStoredEvent, SNAPSHOT_EVENT_TYPE, STREAM_DELETED_TYPE, Subscriber, type OnSubscriberRebuild, type StartFrom, type SubscribedEvent } from 'nest-cosmos-eventstore';
import { LineAdded, LineRemoved, OrderCancelled, OrderPlaced, OrderShipped, OrderSubmitted } from '../orders/index.js';
import { OrderStatsStore } from './order-stats.store.js';

/** The consumer group of the order statistics. */
export const ORDER_STATS_SUBSCRIBER = 'order-stats';
/** Orders' streams in the events container: `@Aggregate({ type: 'Order' })` namespaces them `Order/<id>`. */
const ORDER_STREAMS = 'Order/';

type OrderEvent = OrderPlaced | LineAdded | LineRemoved | OrderSubmitted | OrderShipped | OrderCancelled;

/**
 * Maintains the order statistics from the events container's change feed: every order event, whichever
 * instance reads its feed range, updates the counters once (redeliveries are recognised by version).
 * Only `Order/` streams are looked at, before anything is decoded: a record of another stream (a raw write,
 * another service's events in a shared container) cannot stop it. An order's snapshot record (what
 * `AggregateRepository.truncate` writes before it cuts the events under it) sets the order's row to its state, so
 * a rebuild counts a truncated order from its snapshot, as it was counted before.
 */
// onFailure 'stop': a skipped event would leave the counters wrong for good; stopping the group keeps it
// visible (health, lag, a 503 from /order-stats) until an admin resumes it, replays or discards the event.
@Subscriber({
  name: ORDER_STATS_SUBSCRIBER,
  startFrom: 'beginning',
  serializer: new JsonEventSerializer(),
  concurrency: 4,
  onFailure: 'stop',
})
export class OrderStatsProjection implements OnSubscriberRebuild {
  constructor(private readonly stats: OrderStatsStore) {}

  @OnStoredEvent({
    events: [OrderPlaced, LineAdded, LineRemoved, OrderSubmitted, OrderShipped, OrderCancelled],
    aggregateIdPrefix: ORDER_STREAMS,
  })
  async apply(event: OrderEvent, { aggregateId, version, signal }: SubscribedEvent): Promise<void> {
    // The read model keys orders by their id as the application knows it (`aggregateId`: `o-1` of `Order/o-1`).
    await this.stats.apply({ type: eventTypeOf(event), aggregateId, version, payload: event }, signal);
  }

  /** An order's snapshot: its whole state, the first record left of a truncated order's stream. */
  @OnStoredEvent({ types: [SNAPSHOT_EVENT_TYPE], snapshots: true, aggregateIdPrefix: ORDER_STREAMS })
  async snapshot({ aggregateId, version, event, signal }: SubscribedEvent<{ payload?: unknown }>): Promise<void> {
    await this.stats.apply({ type: SNAPSHOT_EVENT_TYPE, aggregateId, version, payload: event?.payload }, signal);
  }

  /** An erased order (`DELETE /admin/orders/:id`): its stream's tombstone takes it out of every counter. */
  @OnStoredEvent({ types: [STREAM_DELETED_TYPE], aggregateIdPrefix: ORDER_STREAMS })
  async erase({ aggregateId, version, signal }: SubscribedEvent): Promise<void> {
    await this.stats.apply({ type: STREAM_DELETED_TYPE, aggregateId, version, payload: {} }, signal);
  }

  /** A rebuild starts from an empty read model; only a full replay can refill it. */
  async onRebuild(from: StartFrom): Promise<void> {
    if (from !== 'beginning') throw new Error('the order statistics are rebuilt from the beginning only');
    await this.stats.clear();
  }
}
