/*
 * An erasure's tombstone (`deleteStream`) reaches subscribers as an event of type `$stream-deleted` with no
 * payload: a JSON subscriber is not stopped by it (it has no bytes to decode), a handler asking for that type
 * gets it, and typed handlers of other events never see it.
 */
import { Injectable, Module } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import {
  EventStoreModule,
  JsonEventSerializer,
  OnStoredEvent,
  STORE,
  STREAM_DELETED_TYPE,
  Subscriber,
  SUBSCRIPTIONS,
  SubscriptionsModule,
  type SubscribedEvent,
  type Subscriptions,
} from '../../src/index.js';
import type { InMemoryEventStore } from '../../src/testing.js';

class Placed {
  constructor(readonly n: number) {}
}

@Injectable()
class Seen {
  readonly placed: string[] = [];
  readonly erased: string[] = [];
}

@Subscriber({ name: 'erasure-aware', serializer: new JsonEventSerializer(), onFailure: 'stop' })
class ErasureAware {
  constructor(private readonly seen: Seen) {}

  @OnStoredEvent({ events: [Placed] })
  placed(_event: Placed, { streamId, version }: SubscribedEvent): void {
    this.seen.placed.push(`${streamId}@${version}`);
  }

  @OnStoredEvent({ types: [STREAM_DELETED_TYPE] })
  erased({ streamId, version, type, event }: SubscribedEvent): void {
    expect(event).toBeUndefined();
    this.seen.erased.push(`${streamId}@${version}:${type}`);
  }
}

@Module({ imports: [SubscriptionsModule.forFeature([ErasureAware], { providers: [Seen] })] })
class Feature {}

let moduleRef: TestingModule;
afterEach(() => moduleRef?.close());

it('delivers the tombstone by its type, without decoding it, and the subscriber keeps running', async () => {
  moduleRef = await Test.createTestingModule({ imports: [EventStoreModule.inMemory(), SubscriptionsModule.inMemory(), Feature] }).compile();
  await moduleRef.init();
  const store = moduleRef.get<InMemoryEventStore>(STORE);
  const serializer = new JsonEventSerializer();
  const data = serializer.serialize({ type: 'Placed', aggregateId: 'o-1', version: 1, at: 1, actor: 'ann', payload: { n: 1 } });
  await store.save('Order/o-1', [{ version: 1, data, type: 'Placed' }]);
  await store.deleteStream('Order/o-1');
  await store.save('Order/o-2', [{ version: 1, data, type: 'Placed' }]);
  const subscriptions = moduleRef.get<Subscriptions>(SUBSCRIPTIONS);
  await subscriptions.waitForCatchUp('erasure-aware', { timeoutMs: 2_000 });

  const seen = moduleRef.get(Seen, { strict: false });
  // At least once: a delivery may repeat.
  expect([...new Set(seen.erased)]).toEqual([`Order/o-1@2:${STREAM_DELETED_TYPE}`]);
  expect([...new Set(seen.placed)]).toEqual(['Order/o-2@1']); // o-1's event was erased before the subscriber read it
  expect((await subscriptions.lag('erasure-aware'))[0].state).toBe('running');
});
