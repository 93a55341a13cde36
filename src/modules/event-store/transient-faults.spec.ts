import { EventStoreModule } from './event-store.module.js';
import { EventStoreError, NotFoundError, ValidationError } from './event-store.errors.js';
import {
  backoffMs,
  classifyBatchFailure,
  DEFAULT_STORE_RETRY_OPTIONS,
  isTransientReadFailure,
  pause,
  resolveRetryOptions,
  retryTransient,
  sdkRetriedUnknownOutcome,
} from './transient-faults.js';

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

  describe('retryTransient', () => {
    const retries = { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 2 };
    const failing = (...errors: unknown[]) => {
      const seen: number[] = [];
      const attempt = async (n: number) => {
        seen.push(n);
        if (n <= errors.length) throw errors[n - 1];
        return 'done';
      };
      return { seen, attempt };
    };

    it('runs a transiently failing attempt again until it succeeds', async () => {
      const { seen, attempt } = failing({ code: 408 }, { code: 'ECONNRESET' });
      await expect(retryTransient('op', retries, undefined, attempt)).resolves.toBe('done');
      expect(seen).toEqual([1, 2, 3]);
    });

    it('gives up after maxAttempts with an EventStoreError naming the operation, the last failure as cause', async () => {
      const last = Object.assign(new Error('busy'), { code: 503 });
      const { seen, attempt } = failing({ code: 408 }, { code: 503 }, last);
      const err = await retryTransient('get thing', retries, undefined, attempt).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EventStoreError);
      expect((err as Error).message).toBe('get thing failed: busy');
      expect((err as Error).cause).toBe(last);
      expect(seen).toEqual([1, 2, 3]);
    });

    it('does not retry a failure that is not transient, and passes its own EventStoreErrors through', async () => {
      const bad = failing({ code: 400 });
      expect(await retryTransient('op', retries, undefined, bad.attempt).catch((e: unknown) => e)).toBeInstanceOf(EventStoreError);
      expect(bad.seen).toEqual([1]);
      const own = new NotFoundError('gone');
      expect(await retryTransient('op', retries, undefined, failing(own).attempt).catch((e: unknown) => e)).toBe(own);
    });

    it('stops waiting at once when the signal aborts, with the abort reason', async () => {
      const controller = new AbortController();
      const { seen, attempt } = failing({ code: 503 });
      const running = retryTransient('op', { ...retries, initialDelayMs: 60_000, maxDelayMs: 60_000 }, controller.signal, attempt);
      await new Promise((resolve) => setTimeout(resolve, 5));
      controller.abort();
      await expect(running).rejects.toMatchObject({ name: 'AbortError' });
      expect(seen).toEqual([1]);
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
    [{ code: 'ECONNREFUSED' }, true],
    [{ code: 'ETIMEDOUT' }, true],
    [{ code: 'EPIPE' }, true],
    [{ code: 'REQUEST_SEND_ERROR' }, true],
    [{ code: 'UND_ERR_SOCKET' }, true],
    [{ code: 'ERR_INVALID_ARG_TYPE' }, false], // a programming error, not the network
    [{ code: 'ERR_STREAM_PREMATURE_CLOSE_X' }, false],
    [{ code: 'AbortError' }, false], // the caller's own abort
    [{ code: 429 }, false], // the SDK's own throttling retries already ran out
    [{ code: 400 }, false],
    [{ code: 404 }, false],
    [new Error('no code'), false],
    // An answer cut mid-body, as @typespec/ts-http-runtime reports it; a whole body that did not parse is not.
    [Object.assign(new Error('Error reading response as text: aborted'), { code: 'PARSE_ERROR' }), true],
    [Object.assign(new Error('Error "SyntaxError: Unexpected end" occurred while parsing the response body'), { code: 'PARSE_ERROR' }), false],
    // undici and fetch wrap the socket error: the code is on the cause.
    [new TypeError('fetch failed', { cause: Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }) }), true],
    [new Error('outer', { cause: new Error('middle', { cause: { code: 'ECONNRESET' } }) }), true],
    [new Error('outer', { cause: { code: 400 } }), false],
    // The change feed iterator's ErrorResponse keeps only the message.
    [new Error('Error reading response as text: aborted'), true],
    [new Error('read ECONNRESET'), true],
    [Object.assign(new Error('read ECONNRESET'), { code: 400 }), false],
    [new Error('ECONNRESETS are not a code'), false],
  ])('%p: %p', (err, transient) => {
    expect(isTransientReadFailure(err)).toBe(transient);
  });
});

describe('classifyBatchFailure', () => {
  const diagnostics = (failedAttempts: Array<{ statusCode: number | string }>) => ({
    clientSideRequestStatistics: {
      gatewayStatistics: [],
      retryDiagnostics: { failedAttempts: failedAttempts.map((a) => ({ ...a, operationType: 'batch' })) },
    },
  });
  it.each<[string, unknown, { transient: boolean; outcomeUnknown: boolean }]>([
    ['a refused connection', new Error('Batch request error: connect ECONNREFUSED 127.0.0.1:1'), { transient: true, outcomeUnknown: false }],
    ['an unresolved host', new Error('Batch request error: getaddrinfo ENOTFOUND example.invalid'), { transient: true, outcomeUnknown: false }],
    ['a reset', new Error('Batch request error: read ECONNRESET'), { transient: true, outcomeUnknown: true }],
    ['a timeout', new Error('Batch request error: Timeout Error! Request took more than 10 ms'), { transient: true, outcomeUnknown: true }],
    ['an answer cut mid-body', new Error('Batch request error: Error reading response as text: aborted'), { transient: true, outcomeUnknown: true }],
    [
      'a refusal after an SDK retry of an unknown outcome',
      Object.assign(new Error('Batch request error: connect ECONNREFUSED 127.0.0.1:1'), { diagnostics: diagnostics([{ statusCode: 503 }]) }),
      { transient: true, outcomeUnknown: true },
    ],
  ])('%s', (_label, err, expected) => {
    expect(classifyBatchFailure(err)).toMatchObject(expected);
  });

  it('does not count SDK retries of connections that never reached the service as unknown outcomes', () => {
    expect(sdkRetriedUnknownOutcome(diagnostics([{ statusCode: 'ENOTFOUND' }, { statusCode: 429 }]) as never)).toBe(false);
    expect(sdkRetriedUnknownOutcome(diagnostics([{ statusCode: 'ECONNRESET' }]) as never)).toBe(true);
  });
});
