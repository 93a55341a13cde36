import { Injectable, Logger } from '@nestjs/common';
import type { Container } from '@azure/cosmos';
import { InjectAggregatesContainer, InjectEventsContainer } from './cosmos.decorators.js';
import { messageOf, statusOf } from './cosmos-errors.js';

/** How long a health check waits for Cosmos DB by default. */
export const DEFAULT_HEALTH_TIMEOUT_MS = 3_000;

/** The outcome of a health check, shaped like @nestjs/terminus's. */
export type HealthResult =
  | { status: 'ok'; info: { cosmos: { status: 'up' } } }
  | { status: 'error'; error: { cosmos: { status: 'down'; message: string } } };

class HealthTimeout extends Error {}

/**
 * Checks that Cosmos DB answers for both containers. Never throws and never waits longer than the timeout:
 * a health endpoint that hangs is worse than one that says "down". A lost connection, a cut answer or a
 * 408/429/449/503 is tried again (3 attempts in all) within that time.
 */
@Injectable()
export class CosmosHealthIndicator {
  private readonly logger = new Logger(CosmosHealthIndicator.name);

  constructor(
    @InjectEventsContainer() private readonly events: Container,
    @InjectAggregatesContainer() private readonly aggregates: Container,
  ) {}

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
      await Promise.race([this.readBoth(abort.signal), timeout]);
      return { status: 'ok', info: { cosmos: { status: 'up' } } };
    } catch (err) {
      const message = describe(err, timeoutMs);
      this.logger.warn(`Cosmos DB health check failed: ${err instanceof HealthTimeout ? message : messageOf(err)}`);
      return { status: 'error', error: { cosmos: { status: 'down', message } } };
    } finally {
      clearTimeout(timer);
    }
  }

  private async readBoth(signal: AbortSignal): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await Promise.all([this.events, this.aggregates].map((c) => c.read({ abortSignal: signal })));
        return;
      } catch (err) {
        if (signal.aborted || isRefusal(err) || attempt >= HEALTH_ATTEMPTS) throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, HEALTH_RETRY_DELAY_MS * attempt));
    }
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
