/*
 * Declaring subscribers: mistakes are refused when the class is decorated or when the module starts, with a
 * message that says what to change. No Cosmos DB is involved (nothing is read before `start()`).
 */
import { Injectable, Module, Scope, type DynamicModule } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  EVENTS_CONTAINER,
  JsonEventSerializer,
  type EventEnvelope,
  OnStoredEvent,
  Subscriber,
  SubscriberDefinitionError,
  SUBSCRIPTIONS,
  SubscriptionsModule,
  UnknownSubscriberError,
  type SubscribedEvent,
  type Subscriptions,
} from '../../src/index.js';

/** Stands in for CosmosModule: the containers are never called while the subscriptions are not started. */
@Module({})
class FakeCosmos {}
const fakeCosmos: DynamicModule = {
  module: FakeCosmos,
  global: true,
  providers: [{ provide: EVENTS_CONTAINER, useValue: { database: { container: (id: string) => ({ id }) } } }],
  exports: [EVENTS_CONTAINER],
};

async function boot(...features: DynamicModule[]): Promise<Subscriptions> {
  const moduleRef = await Test.createTestingModule({
    imports: [fakeCosmos, SubscriptionsModule.forRoot({ ensure: false, autoStart: false }), ...features],
  }).compile();
  await moduleRef.init();
  return moduleRef.get<Subscriptions>(SUBSCRIPTIONS);
}

@Subscriber({ name: 'plain' })
class Plain {
  @OnStoredEvent()
  handle(_event: SubscribedEvent): void {}
}

const JSON_DECODER = Symbol('JSON_DECODER');

@Injectable()
class JsonDecoder {
  deserialize(bytes: Uint8Array): unknown {
    return JSON.parse(new TextDecoder().decode(bytes));
  }
}

@Subscriber({ name: 'typed', serializer: JSON_DECODER })
class Typed {
  @OnStoredEvent('Placed')
  placed(_event: SubscribedEvent<{ type: string }>): void {}
}

describe('@Subscriber and @OnStoredEvent', () => {
  it.each([
    ['an empty name', { name: '' }, /name must be a non-empty string/],
    ['a name of 201 characters', { name: 'x'.repeat(201) }, /at most 200 characters/],
    ['an unknown start', { name: 'x', startFrom: 'yesterday' }, /startFrom of x must be 'beginning', 'now' or a valid Date/],
    ['an invalid date', { name: 'x', startFrom: new Date(Number.NaN) }, /startFrom/],
    ['maxItemCount 0', { name: 'x', maxItemCount: 0 }, /maxItemCount of x must be a positive integer/],
    ['concurrency 1.5', { name: 'x', concurrency: 1.5 }, /concurrency of x must be a positive integer/],
    ['an unknown failure policy', { name: 'x', onFailure: 'ignore' }, /onFailure of x must be 'dead-letter' or 'stop'/],
  ])('refuses %s', (_label, options, message) => {
    expect(() => Subscriber(options as never)).toThrow(message);
  });

  it('refuses an empty event type and a filter mixed with names', () => {
    expect(() => OnStoredEvent('')).toThrow(SubscriberDefinitionError);
    expect(() => OnStoredEvent('A', { types: ['B'] } as never)).toThrow(/one filter object/);
  });

  it('takes event classes, and checks at compile time that the handler takes those events', () => {
    class Placed {
      constructor(readonly customerId: string) {}
    }
    class Shipped {
      static readonly type = 'OrderShipped';
      constructor(readonly carrier: string) {}
    }
    @Subscriber({ name: 'classes', serializer: new JsonEventSerializer() })
    class Classes {
      @OnStoredEvent(Placed)
      placed(event: Placed, context: SubscribedEvent<EventEnvelope>): string {
        return `${event.customerId}@${context.version}`;
      }

      @OnStoredEvent({ events: [Placed, Shipped], aggregateIdPrefix: 'Order/' })
      either(_event: Placed | Shipped): void {}

      // @ts-expect-error: the handler takes a Shipped, the decorator selects Placed
      @OnStoredEvent(Placed)
      wrong(_event: Shipped): void {}

      // @ts-expect-error: two classes select a union, not one of them
      @OnStoredEvent(Placed, Shipped)
      narrow(_event: Placed): void {}
    }
    expect(SubscriptionsModule.forFeature([Classes]).providers).toHaveLength(3);
    expect(() => OnStoredEvent({ events: [Placed], types: ['Placed'] } as never)).toThrow(/events \(classes\) or types \(names\), not both/);
    expect(() => OnStoredEvent({ events: [] } as never)).toThrow(/non-empty array of event classes/);
    class Placed2 {
      static readonly type = 'Placed';
    }
    expect(() => OnStoredEvent(Placed, Placed2)).toThrow(/Placed and Placed2 are both stored as event type "Placed"/);
  });

  it('refuses to register a class without @Subscriber or without handlers', () => {
    class NotASubscriber {}
    expect(() => SubscriptionsModule.forFeature([NotASubscriber])).toThrow(/decorate it with @Subscriber/);
    @Subscriber({ name: 'idle' })
    class Idle {}
    expect(() => SubscriptionsModule.forFeature([Idle])).toThrow(/has no handler: mark at least one method with @OnStoredEvent/);
  });
});

describe('registration', () => {
  it('registers subscribers of several feature modules, resolving a serializer given as a token', async () => {
    const subscriptions = await boot(
      SubscriptionsModule.forFeature([Plain]),
      SubscriptionsModule.forFeature([Typed], { providers: [{ provide: JSON_DECODER, useClass: JsonDecoder }] }),
    );
    expect(subscriptions.names().sort()).toEqual(['plain', 'typed']);
    expect(subscriptions.status()).toEqual([
      { name: 'plain', ownedRanges: [], handled: 0, passedOver: 0, deadLettered: 0, parkedAggregates: [] },
      { name: 'typed', ownedRanges: [], handled: 0, passedOver: 0, deadLettered: 0, parkedAggregates: [] },
    ]);
    await expect(subscriptions.lag('nope')).rejects.toThrow(UnknownSubscriberError);
  });

  it('fails the start naming a subscriber that cannot be a singleton, and the dependency that makes it so', async () => {
    @Injectable({ scope: Scope.REQUEST })
    class RequestContext {}

    @Injectable()
    class Middle {
      constructor(readonly context: RequestContext) {}
    }

    @Subscriber({ name: 'scoped' })
    class Scoped {
      constructor(readonly middle: Middle) {}

      @OnStoredEvent()
      handle(): void {}
    }

    @Subscriber({ name: 'transient' })
    @Injectable({ scope: Scope.TRANSIENT })
    class Transient {
      @OnStoredEvent()
      handle(): void {}
    }

    await expect(boot(SubscriptionsModule.forFeature([Scoped], { providers: [Middle, RequestContext] }))).rejects.toThrow(
      /subscriber Scoped cannot be a singleton: it depends on Middle, which depends on RequestContext \(request-scoped\)/,
    );
    // Transient with static dependencies: its registration gets one instance, which is all a reader needs.
    expect((await boot(SubscriptionsModule.forFeature([Transient]))).names()).toEqual(['transient']);
  });

  it('refuses two subscribers of one name: a name is a consumer group', async () => {
    @Subscriber({ name: 'plain' })
    class Twin {
      @OnStoredEvent()
      handle(): void {}
    }
    await expect(boot(SubscriptionsModule.forFeature([Plain, Twin]))).rejects.toThrow(/two subscribers are named "plain"/);
  });

  it('refuses a serializer whose optional hooks are not methods', async () => {
    @Subscriber({ name: 'hooked', serializer: { deserialize: () => ({}), typeOf: 'type' } as never })
    class Hooked {
      @OnStoredEvent()
      handle(): void {}
    }
    await expect(boot(SubscriptionsModule.forFeature([Hooked]))).rejects.toThrow(/the serializer of Hooked has a typeOf that is not a method/);
  });

  it('refuses type filters without a serializer to read the type', async () => {
    @Subscriber({ name: 'blind' })
    class Blind {
      @OnStoredEvent('Placed')
      placed(): void {}
    }
    await expect(boot(SubscriptionsModule.forFeature([Blind]))).rejects.toThrow(/has no serializer to decode them/);
  });
});

describe('module options', () => {
  it('are checked when the module is imported, naming the option', () => {
    expect(() => SubscriptionsModule.forRoot({ leaseDurationMs: 1_000, renewIntervalMs: 600 })).toThrow(
      /"renewIntervalMs" must be at most half of leaseDurationMs/,
    );
    expect(() => SubscriptionsModule.forRoot({ pollIntervalMs: 0 })).toThrow(/"pollIntervalMs" must be a positive integer/);
    expect(() => SubscriptionsModule.forRoot({ leasesContainerId: 'a/b' })).toThrow(/"leasesContainerId"/);
    expect(() => SubscriptionsModule.forRoot({ retry: { attempts: 0 } })).toThrow(/retry.attempts must be an integer of at least 1/);
    expect(() => SubscriptionsModule.forRootAsync({} as never)).toThrow(/give one of useFactory/);
  });
});
