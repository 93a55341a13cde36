import type { Logger } from '@nestjs/common';
import type { FeedEvent } from './change-feed-reader.js';
import { SubscriberRuntime, type DeliveryControl, type ResolvedSubscriber } from './subscriber-runtime.js';

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
