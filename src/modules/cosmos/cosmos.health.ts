import { Injectable, Logger } from '@nestjs/common';
import type { Container } from '@azure/cosmos';
import { InjectAggregatesContainer, InjectEventsContainer } from './cosmos.decorators.js';
import { messageOf, statusOf } from './cosmos-errors.js';

/** How long a health check waits for Cosmos DB by default. */
export const DEFAULT_HEALTH_TIMEOUT_MS = 3_000;

/**
 * What a @nestjs/terminus health indicator answers, `{ [key]: { status, ...details } }`: the type
 * `HealthCheckService.check([() => indicator.isHealthy()])` takes (terminus's `HealthIndicatorResult`), written out
 * here so the library's types do not need @nestjs/terminus installed.
 */
export type HealthIndicatorResult<Key extends string = string> = Record<Key, { status: 'up' | 'down' } & Record<string, unknown>>;

interface HealthIndicatorSession<Key extends string> {
  up(data?: Record<string, unknown>): HealthIndicatorResult<Key>;
  down(data?: Record<string, unknown>): HealthIndicatorResult<Key>;
}

let sessions: Promise<(key: string) => HealthIndicatorSession<string>> | undefined;

/**
 * A session of @nestjs/terminus's `HealthIndicatorService` for `key` when terminus is installed (an optional
 * peer, loaded on the first probe, never at import), else one composing the same result.
 */
export async function healthIndicatorSession<Key extends string>(key: Key): Promise<HealthIndicatorSession<Key>> {
  sessions ??= import('@nestjs/terminus').then(
    (terminus) => {
      const service = new terminus.HealthIndicatorService();
      return (k: string) => service.check(k) as HealthIndicatorSession<string>;
    },
    () => (k: string) => ({
      up: (data?: Record<string, unknown>) => ({ [k]: { ...data, status: 'up' as const } }),
      down: (data?: Record<string, unknown>) => ({ [k]: { ...data, status: 'down' as const } }),
    }),
  );
  return (await sessions)(key) as HealthIndicatorSession<Key>;
}

/** The outcome of `CosmosHealthIndicator.check()`. */
export type HealthResult =
  | { status: 'ok'; info: { cosmos: { status: 'up' } } }
  | { status: 'error'; error: { cosmos: { status: 'down'; message: string } } };

class HealthTimeout extends Error {}

// The id point-read on each container: no document has it, so Cosmos DB answers 404 without a sub-status when
// the container exists, 404/1003 when it (or the database) does not.
const PROBE_ID = '__nest-cosmos-eventstore-health-probe__';

/**
 * A @nestjs/terminus health indicator of Cosmos DB, provided by `CosmosModule`: `isHealthy()` is `up` when
 * both containers answer, `down` with a short `message` otherwise (so `HealthCheckService` answers 503).
 * Each probe is one point read per container of an id that does not exist (a data-plane read, 1 RU; a 404
 * without a sub-status is an answer), never a metadata request. Never throws and never waits longer than the
 * timeout: a health endpoint that hangs is worse than one that says "down". A lost connection, a cut answer
 * or a 408/429/449/503 is tried again (3 attempts in all) within that time.
 *
 * @example
 * @Get('health')
 * @HealthCheck()
 * check() {
 *   return this.health.check([() => this.cosmos.isHealthy(), () => this.subscriptions.isHealthy()]);
 * }
 */
@Injectable()
export class CosmosHealthIndicator {
  private readonly logger = new Logger(CosmosHealthIndicator.name);

  constructor(
    @InjectEventsContainer() private readonly events: Container,
    @InjectAggregatesContainer() private readonly aggregates: Container,
  ) {}

  /** The terminus result under `key` (default `cosmos`): `up`, or `down` with `message`. */
  async isHealthy<Key extends string = 'cosmos'>(
    key: Key = 'cosmos' as Key,
    options: { timeoutMs?: number } = {},
  ): Promise<HealthIndicatorResult<Key>> {
    const result = await this.check(options);
    const session = await healthIndicatorSession(key);
    return result.status === 'ok' ? session.up() : session.down({ message: result.error.cosmos.message });
  }

  /** The same probe, answered as `{ status: 'ok' | 'error', ... }` (kept for callers that do not use terminus). */
  async check(options: { timeoutMs?: number } = {}): Promise<HealthResult> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS;
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    // Raced as well as aborted: the SDK's retries do not all honour the signal promptly.
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        abort.abort();
        reject(new HealthTimeout());
      }, timeoutMs);
    });
    try {
      await Promise.race([this.probeBoth(abort.signal), timeout]);
      return { status: 'ok', info: { cosmos: { status: 'up' } } };
    } catch (err) {
      const message = describe(err, timeoutMs);
      this.logger.warn(`Cosmos DB health check failed: ${err instanceof HealthTimeout ? message : messageOf(err)}`);
      return { status: 'error', error: { cosmos: { status: 'down', message } } };
    } finally {
      clearTimeout(timer);
    }
  }

  private async probeBoth(signal: AbortSignal): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await Promise.all([this.events, this.aggregates].map((c) => probe(c, signal)));
        return;
      } catch (err) {
        if (signal.aborted || isRefusal(err) || attempt >= HEALTH_ATTEMPTS) throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, HEALTH_RETRY_DELAY_MS * attempt));
    }
  }
}

/** One point read of a missing id: 404 without a sub-status is Cosmos DB answering; 404/1003 a missing container. */
async function probe(container: Container, signal: AbortSignal): Promise<void> {
  const { statusCode, substatus } = await container.item(PROBE_ID, PROBE_ID).read({ abortSignal: signal });
  if (statusCode === 404 && substatus !== undefined && substatus !== 0) {
    throw Object.assign(new Error(`container ${JSON.stringify(container.id)} not found`), { code: 404, substatus });
  }
}

// Health reads retried within the timeout: one lost connection or cut answer is not an outage.
const HEALTH_ATTEMPTS = 3;
const HEALTH_RETRY_DELAY_MS = 100;

/** A failure another attempt may not meet: an answer that says no (anything but 408, 429, 449, 503). */
function isRefusal(err: unknown): boolean {
  const status = statusOf(err);
  return status !== undefined && ![408, 429, 449, 503].includes(status);
}

/** A short reason for the HTTP answer; SDK messages can be long, so only their gist goes out. */
function describe(err: unknown, timeoutMs: number): string {
  if (err instanceof HealthTimeout) return `Cosmos DB did not answer within ${timeoutMs} ms`;
  const status = statusOf(err);
  if (status === 401 || status === 403) return `Cosmos DB refused the credentials (HTTP ${status})`;
  if (status === 404) return 'the database or a container does not exist (HTTP 404)';
  if (status !== undefined) return `Cosmos DB answered HTTP ${status}`;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? `Cosmos DB is unreachable (${code})` : `Cosmos DB is unreachable: ${messageOf(err).split('\n')[0]}`;
}
