import { JsonEventSerializer, type EventEnvelope } from 'nest-cosmos-eventstore';
import { OnEvent, Subscriber, type OnSubscriberRebuild, type StartFrom, type SubscribedEvent } from 'nest-cosmos-eventstore';
import { ORDER_EVENT_TYPES, OrderStatsStore } from './order-stats.store.js';

/** The consumer group of the order statistics. */
export const ORDER_STATS_SUBSCRIBER = 'order-stats';
/** Orders' streams in the events container: `@Aggregate({ type: 'Order' })` namespaces them `Order/<id>`. */
const ORDER_STREAMS = 'Order/';

/**
 * Maintains the order statistics from the events container's change feed: every order event, whichever
 * instance reads its feed range, updates the counters once (redeliveries are recognised by version).
 * Snapshot records in the streams are not events and are filtered out by type.
 */
// onFailure 'stop': a skipped event would leave the counters wrong for good; stopping the group keeps it
// visible (health, lag) and a resume() delivers the event again from the last checkpoint.
@Subscriber({
  name: ORDER_STATS_SUBSCRIBER,
  startFrom: 'beginning',
  serializer: new JsonEventSerializer(),
  concurrency: 4,
  onFailure: 'stop',
})
export class OrderStatsProjection implements OnSubscriberRebuild {
  constructor(private readonly stats: OrderStatsStore) {}

  @OnEvent({ aggregateIdPrefix: ORDER_STREAMS, types: Object.values(ORDER_EVENT_TYPES) })
  async apply({ event, signal }: SubscribedEvent<EventEnvelope>): Promise<void> {
    await this.stats.apply(event!, signal);
  }

  /** A rebuild starts from an empty read model; only a full replay can refill it. */
  async onRebuild(from: StartFrom): Promise<void> {
    if (from !== 'beginning') throw new Error('the order statistics are rebuilt from the beginning only');
    await this.stats.clear();
  }
}
