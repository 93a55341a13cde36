import { EventStoreModule } from './event-store.module.js';
import { ValidationError } from './event-store.errors.js';
import { backoffMs, DEFAULT_STORE_RETRY_OPTIONS, isTransientReadFailure, pause, resolveRetryOptions } from './transient-faults.js';

describe('store retry options', () => {
  it('fills in the documented defaults', () => {
    expect(resolveRetryOptions(undefined)).toEqual({ maxAttempts: 5, initialDelayMs: 100, maxDelayMs: 2000 });
    expect(resolveRetryOptions({ maxAttempts: 1 })).toEqual({ ...DEFAULT_STORE_RETRY_OPTIONS, maxAttempts: 1 });
  });

  it.each([
    [{ maxAttempts: 0 }, 'retries.maxAttempts'],
    [{ maxAttempts: 2.5 }, 'retries.maxAttempts'],
    [{ initialDelayMs: -1 }, 'retries.initialDelayMs'],
    [{ maxDelayMs: Number.NaN }, 'retries.maxDelayMs'],
    ['often', 'retries'],
  ])('refuses %p, naming %s, when the store or the module is built', (retries, field) => {
    const refusal = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return err;
      }
      return undefined;
    };
    for (const err of [
      refusal(() => resolveRetryOptions(retries as never)),
      refusal(() => EventStoreModule.forRoot({ retries: retries as never })),
    ]) {
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).field).toBe(field);
    }
  });

  it('backs off exponentially up to the cap, each wait between half and all of its step', () => {
    const options = { maxAttempts: 10, initialDelayMs: 100, maxDelayMs: 1000 };
    const steps = [100, 200, 400, 800, 1000, 1000];
    steps.forEach((step, i) => {
      for (let n = 0; n < 50; n++) {
        const wait = backoffMs(i + 1, options);
        expect(wait).toBeGreaterThanOrEqual(step / 2);
        expect(wait).toBeLessThanOrEqual(step);
      }
    });
  });

  it('rejects a pause with the abort reason as soon as the signal aborts', async () => {
    const controller = new AbortController();
    const waiting = pause(60_000, controller.signal);
    controller.abort(new Error('stop'));
    await expect(waiting).rejects.toThrow('stop');
  });
});

describe('isTransientReadFailure', () => {
  it.each([
    [{ code: 408 }, true],
    [{ code: 503 }, true],
    [{ code: 449 }, true],
    [{ code: 'ECONNRESET' }, true],
    [{ code: 'TimeoutError' }, true],
    [{ code: 429 }, false], // the SDK's own throttling retries already ran out
    [{ code: 400 }, false],
    [{ code: 404 }, false],
    [new Error('no code'), false],
  ])('%p: %p', (err, transient) => {
    expect(isTransientReadFailure(err)).toBe(transient);
  });
});
