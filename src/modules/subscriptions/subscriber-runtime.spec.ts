import { jest } from '@jest/globals';
import { getEventListeners } from 'node:events';
import type { Logger } from '@nestjs/common';
import { JsonEventSerializer, SNAPSHOT_EVENT_TYPE } from '../event-sourcing/index.js';
import type { FeedEvent } from './change-feed-reader.js';
import { streamParts, SubscriberRuntime, type DeliveryControl, type ResolvedSubscriber } from './subscriber-runtime.js';
import { OnStoredEvent, Subscriber, subscriberDefinitionOf } from './subscriptions.decorators.js';
import type { DeadLetter, SubscribedEvent } from './subscriptions.interfaces.js';

const quiet = { log() {}, warn() {}, error() {} } as unknown as Logger;
const event = (aggregateId: string, version: number): FeedEvent => ({ aggregateId, version, data: new Uint8Array(0), committedAt: new Date(0) });
const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

describe('SubscriberRuntime.deliverPage with concurrency > 1', () => {
  it('when one lane fails, the others take no further event, and the page fails only once every lane settled', async () => {
    const calls: string[] = [];
    let running = 0;
    const instance = {
      async handle(e: FeedEvent): Promise<void> {
        running++;
        calls.push(`${e.aggregateId}@${e.version}`);
        await tick();
        running--;
        if (e.aggregateId === 'bad') throw new Error('handler failed');
      },
    };
    const subscriber: ResolvedSubscriber = {
      name: 'sub',
      className: 'Sub',
      instance,
      handlers: [{ method: 'handle', filter: {} } as ResolvedSubscriber['handlers'][number]],
      retry: { attempts: 1, initialDelayMs: 1, maxDelayMs: 1 },
      onFailure: 'dead-letter',
      maxItemCount: 100,
      concurrency: 3,
    };
    const runtime = new SubscriberRuntime(subscriber, quiet);
    const control: DeliveryControl = {
      mayContinue: () => true,
      signal: new AbortController().signal,
      deadLetter: () => Promise.reject(new Error('dead letter write failed')),
    };
    const page = [event('bad', 1), ...Array.from({ length: 10 }, (_, i) => [event('x', i + 1), event('y', i + 1), event('z', i + 1)]).flat()];

    await expect(runtime.deliverPage(page, control)).rejects.toThrow('dead letter write failed');
    // Nothing is still running when the page has failed (the reader may retry it at once)...
    expect(running).toBe(0);
    const settled = calls.length;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(calls.length).toBe(settled);
    // ...and the other lanes stopped taking events: at most the event each had in hand after the failure.
    expect(calls.length).toBeLessThanOrEqual(1 + 2 * 2);
  });
});

describe('SubscriberRuntime.deliverPage, a lane retrying when another fails', () => {
  it('cuts the retry wait short and does not dead-letter the event it was retrying', async () => {
    const letters: string[] = [];
    const subscriber: ResolvedSubscriber = {
      name: 'sub',
      className: 'Sub',
      instance: {
        async handle(): Promise<void> {
          await tick();
          throw new Error('handler failed');
        },
      },
      handlers: [{ method: 'handle', filter: {} } as ResolvedSubscriber['handlers'][number]],
      // 'bad' cannot be decoded: given up at once. 'slow' fails and would wait a minute before its retry.
      serializer: {
        deserialize: (data: Uint8Array) => {
          if (data.length > 0) throw new Error('cannot decode');
          return {};
        },
      },
      retry: { attempts: 2, initialDelayMs: 60_000, maxDelayMs: 60_000 },
      onFailure: 'dead-letter',
      maxItemCount: 100,
      concurrency: 2,
    };
    const runtime = new SubscriberRuntime(subscriber, quiet);
    const control: DeliveryControl = {
      mayContinue: () => true,
      signal: new AbortController().signal,
      deadLetter: (letter) => {
        letters.push(letter.aggregateId);
        return Promise.reject(new Error('dead letter write failed'));
      },
    };
    const bad = { ...event('bad', 1), data: new Uint8Array([1]) };
    const started = Date.now();
    await expect(runtime.deliverPage([event('slow', 1), bad], control)).rejects.toThrow('dead letter write failed');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(letters).toEqual(['bad']);
  });
});

// --- filters, snapshots, typed handlers, serializers: subscribers declared as a consumer declares them ---

/** A subscriber class's runtime, with its decorators read as the module reads them. */
function runtimeOf(type: new () => object, serializer?: ResolvedSubscriber['serializer']): { runtime: SubscriberRuntime; instance: object } {
  const instance = new type();
  const { options, handlers } = subscriberDefinitionOf(type);
  const runtime = new SubscriberRuntime(
    {
      name: options.name,
      className: type.name,
      instance,
      handlers,
      serializer: serializer ?? (options.serializer as ResolvedSubscriber['serializer']),
      retry: { attempts: 2, initialDelayMs: 1, maxDelayMs: 1 },
      onFailure: options.onFailure ?? 'dead-letter',
      maxItemCount: 100,
      concurrency: 1,
    },
    quiet,
  );
  return { runtime, instance };
}

function recordingControl(settled: Array<{ aggregateId: string; version: number; handler: string }> = []) {
  const letters: Array<Omit<DeadLetter, 'id' | 'subscriber' | 'instanceId'>> = [];
  const control: DeliveryControl = {
    mayContinue: () => true,
    signal: new AbortController().signal,
    deadLetter: async (letter) => void letters.push(letter),
    isSettled: (e) => settled.some((s) => s.aggregateId === e.aggregateId && s.version === e.version && s.handler === e.handler),
  };
  return { control, letters };
}

const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const envelope = (aggregateId: string, version: number, type: string, payload: unknown): FeedEvent => ({
  aggregateId,
  version,
  data: json({ type, aggregateId: aggregateId.split('/')[1] ?? aggregateId, version, at: 1, actor: 'test', payload }),
  committedAt: new Date(1_000),
});

class Placed {
  constructor(readonly customerId: string) {}
  get shout(): string {
    return this.customerId.toUpperCase();
  }
}
class Shipped {
  static readonly type = 'OrderShipped';
  readonly carrier: string = '';
}

describe('SubscriberRuntime: what the stored document decides comes before decoding', () => {
  const seen: string[] = [];

  @Subscriber({ name: 'orders-only', serializer: new JsonEventSerializer(), onFailure: 'stop' })
  class OrdersOnly {
    @OnStoredEvent({ aggregateIdPrefix: 'Order/' })
    handle({ streamId: aggregateId, version }: SubscribedEvent): void {
      seen.push(`${aggregateId}@${version}`);
    }
  }

  it('never decodes, dead-letters or stops on a record of a stream no handler takes (a raw write, a protobuf writer)', async () => {
    const { runtime } = runtimeOf(OrdersOnly);
    const { control, letters } = recordingControl();
    const page = [
      // The README walkthrough's raw write: {"placed":true}, not an envelope.
      { aggregateId: 'demo-1', version: 1, data: Buffer.from('eyJwbGFjZWQiOnRydWV9', 'base64'), committedAt: new Date(0) },
      // A protosource service's event: a protobuf Any (field 1: the type URL), in its own stream namespace.
      { aggregateId: 'example_app_order_v1#o-1', version: 1, data: new Uint8Array([0x0a, 0x05, 0x74, 0x79, 0x70, 0x65, 0x2f]), committedAt: new Date(0) },
      envelope('Order/1', 1, 'Placed', { customerId: 'c-1' }),
    ];
    await expect(runtime.deliverPage(page, control)).resolves.toBe('handled');
    expect(letters).toEqual([]);
    expect(seen).toEqual(['Order/1@1']);
    expect(runtime.stats).toMatchObject({ handled: 1, passedOver: 2, deadLettered: 0 });
  });

  it('an event a handler takes by stream but that cannot be decoded follows the policy (here: stop)', async () => {
    const { runtime } = runtimeOf(OrdersOnly);
    const { control, letters } = recordingControl();
    const poison = { aggregateId: 'Order/2', version: 1, data: json({ placed: true }), committedAt: new Date(0) };
    await expect(runtime.deliverPage([poison], control)).resolves.toBe('stopped');
    expect(letters.map((l) => [l.aggregateId, l.handler, l.policy])).toEqual([['Order/2', '(deserialize)', 'stop']]);
    // What a stopped group gives as its reason.
    expect(runtime.stats.lastError).toMatch(/^\(deserialize\) on Order\/2@1: a stored event is not an envelope/);
  });

  it('an event whose failure was settled by hand is passed over, for its handler only', async () => {
    const { runtime } = runtimeOf(OrdersOnly);
    const { control, letters } = recordingControl([{ aggregateId: 'Order/3', version: 1, handler: '(deserialize)' }]);
    const poison = { aggregateId: 'Order/3', version: 1, data: json({ placed: true }), committedAt: new Date(0) };
    await expect(runtime.deliverPage([poison, envelope('Order/3', 2, 'Placed', {})], control)).resolves.toBe('handled');
    expect(letters).toEqual([]);
    expect(seen).toContain('Order/3@2');
  });
});

describe('SubscriberRuntime: snapshots and typed handlers', () => {
  const calls: Array<{ handler: string; event: unknown; context?: SubscribedEvent }> = [];

  @Subscriber({ name: 'typed', serializer: new JsonEventSerializer() })
  class Typed {
    @OnStoredEvent(Placed)
    placed(event: Placed, context: SubscribedEvent): void {
      calls.push({ handler: 'placed', event, context });
    }

    @OnStoredEvent({ events: [Placed, Shipped], aggregateIdPrefix: 'Order/' })
    either(event: Placed | Shipped): void {
      calls.push({ handler: 'either', event });
    }

    @OnStoredEvent()
    all({ type }: SubscribedEvent): void {
      calls.push({ handler: 'all', event: type });
    }

    @OnStoredEvent({ snapshots: true, aggregateIdPrefix: 'Order/' })
    everything({ type }: SubscribedEvent): void {
      calls.push({ handler: 'everything', event: type });
    }
  }

  beforeEach(() => calls.splice(0));

  it('hands event classes their typed event (an instance with the stored fields) and the SubscribedEvent', async () => {
    const { runtime } = runtimeOf(Typed);
    await runtime.deliverPage([envelope('Order/1', 1, 'Placed', { customerId: 'c-1' })], recordingControl().control);
    const placed = calls.find((c) => c.handler === 'placed')!;
    expect(placed.event).toBeInstanceOf(Placed);
    expect((placed.event as Placed).customerId).toBe('c-1');
    expect((placed.event as Placed).shout).toBe('C-1');
    expect(placed.context).toMatchObject({ streamId: 'Order/1', aggregateType: 'Order', aggregateId: '1', version: 1, type: 'Placed', attempt: 1 });
    expect(calls.map((c) => c.handler)).toEqual(['placed', 'either', 'all', 'everything']);
  });

  it('selects a class by its stored type name (static type), and no other class', async () => {
    const { runtime } = runtimeOf(Typed);
    await runtime.deliverPage([envelope('Order/1', 2, 'OrderShipped', { carrier: 'ups' })], recordingControl().control);
    expect(calls.map((c) => c.handler)).toEqual(['either', 'all', 'everything']);
    expect(calls[0].event).toBeInstanceOf(Shipped);
    expect(calls[0].event).toMatchObject({ carrier: 'ups' });
  });

  it('keeps snapshot records from every handler, catch-all included, unless it asks for them', async () => {
    const { runtime } = runtimeOf(Typed);
    await runtime.deliverPage([envelope('Order/1', 3, SNAPSHOT_EVENT_TYPE, { customerId: 'c-1' })], recordingControl().control);
    expect(calls).toEqual([{ handler: 'everything', event: SNAPSHOT_EVENT_TYPE }]);
    expect(runtime.stats.handled).toBe(1);
  });

  it('reads type, payload and snapshots through the serializer when it says how (a non-JSON format)', async () => {
    // A made-up binary format: "<type>\0<kind>\0<json fields>", kind S for snapshots.
    const binary = {
      deserialize: (bytes: Uint8Array) => {
        const [type, kind, fields] = new TextDecoder().decode(bytes).split('\0');
        return { name: type, kind, fields: JSON.parse(fields) as unknown };
      },
      typeOf: (e: unknown) => (e as { name: string }).name,
      payloadOf: (e: unknown) => (e as { fields: unknown }).fields,
      isSnapshot: (e: unknown) => (e as { kind: string }).kind === 'S',
    };
    const { runtime } = runtimeOf(Typed, binary);
    const bytes = (text: string) => new TextEncoder().encode(text);
    await runtime.deliverPage(
      [
        { aggregateId: 'Order/9', version: 1, data: bytes('Placed\0E\0{"customerId":"c-9"}'), committedAt: new Date(0) },
        { aggregateId: 'Order/9', version: 2, data: bytes('Placed\0S\0{"customerId":"c-9"}'), committedAt: new Date(0) },
      ],
      recordingControl().control,
    );
    expect(calls.map((c) => c.handler)).toEqual(['placed', 'either', 'all', 'everything', 'everything']);
    expect(calls[0].event).toBeInstanceOf(Placed);
    expect((calls[0].event as Placed).customerId).toBe('c-9');
  });

  it('replays a dead letter to the handler that failed on it only', async () => {
    const { runtime } = runtimeOf(Typed);
    const event = envelope('Order/1', 1, 'Placed', { customerId: 'c-1' });
    const letter: DeadLetter = {
      id: 'x',
      subscriber: 'typed',
      handler: 'Typed.either',
      ...event,
      error: { name: 'Error', message: 'boom' },
      attempts: 2,
      failedAt: new Date(),
      instanceId: 'A',
      policy: 'dead-letter',
    };
    await runtime.replay(letter);
    expect(calls.map((c) => c.handler)).toEqual(['either']);
    await expect(runtime.replay({ ...letter, handler: 'Typed.gone' })).rejects.toThrow(/has no handler Typed.gone/);
  });
});

describe('SubscriberRuntime.deliverPage and the reader signal', () => {
  it('keeps nothing per page on the long-lived signal (no AbortSignal.any, no listener left), and still passes its abort on', async () => {
    const seen: AbortSignal[] = [];
    const subscriber: ResolvedSubscriber = {
      name: 'sub',
      className: 'Sub',
      instance: { handle: (e: SubscribedEvent) => void seen.push(e.signal!) },
      handlers: [{ method: 'handle', filter: {} } as ResolvedSubscriber['handlers'][number]],
      retry: { attempts: 1, initialDelayMs: 1, maxDelayMs: 1 },
      onFailure: 'dead-letter',
      maxItemCount: 100,
      concurrency: 1,
    };
    const runtime = new SubscriberRuntime(subscriber, quiet);
    const reader = new AbortController();
    const control: DeliveryControl = { mayContinue: () => true, signal: reader.signal, deadLetter: () => Promise.resolve() };
    const any = jest.spyOn(AbortSignal, 'any');
    try {
      for (let i = 1; i <= 200; i++) await runtime.deliverPage([event('a', i)], control);
      expect(any).not.toHaveBeenCalled();
      expect(getEventListeners(reader.signal, 'abort')).toHaveLength(0);
    } finally {
      any.mockRestore();
    }
    // A handler in flight hears the reader's abort.
    let heard: AbortSignal | undefined;
    const slow: ResolvedSubscriber = {
      ...subscriber,
      instance: {
        handle: async (e: SubscribedEvent) => {
          heard = e.signal;
          reader.abort();
          await tick();
        },
      },
    };
    await new SubscriberRuntime(slow, quiet).deliverPage([event('b', 1)], control);
    expect(heard?.aborted).toBe(true);
  });
});

describe('streamParts', () => {
  it("gives the aggregate's type and id as repositories use them beside the stream id", () => {
    expect(streamParts('Account/evo-1')).toEqual({ streamId: 'Account/evo-1', aggregateType: 'Account', aggregateId: 'evo-1' });
    expect(streamParts('Order/a/b')).toEqual({ streamId: 'Order/a/b', aggregateType: 'Order', aggregateId: 'a/b' });
    expect(streamParts('raw-stream')).toEqual({ streamId: 'raw-stream', aggregateId: 'raw-stream' });
    expect(streamParts('/x')).toEqual({ streamId: '/x', aggregateId: '/x' });
  });

  it('hands handlers the three of them', async () => {
    const got: SubscribedEvent[] = [];
    const subscriber: ResolvedSubscriber = {
      name: 'sub',
      className: 'Sub',
      instance: { handle: (e: SubscribedEvent) => void got.push(e) },
      handlers: [{ method: 'handle', filter: {} } as ResolvedSubscriber['handlers'][number]],
      retry: { attempts: 1, initialDelayMs: 1, maxDelayMs: 1 },
      onFailure: 'dead-letter',
      maxItemCount: 100,
      concurrency: 1,
    };
    const control: DeliveryControl = { mayContinue: () => true, signal: new AbortController().signal, deadLetter: () => Promise.resolve() };
    await new SubscriberRuntime(subscriber, quiet).deliverPage([event('Account/evo-1', 3)], control);
    expect(got[0]).toMatchObject({ streamId: 'Account/evo-1', aggregateType: 'Account', aggregateId: 'evo-1', version: 3, attempt: 1 });
  });
});
