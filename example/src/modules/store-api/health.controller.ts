import { Controller, Get, Optional } from '@nestjs/common';
import { HealthCheck, HealthCheckService, type HealthCheckResult, type HealthIndicatorFunction } from '@nestjs/terminus';
import { CosmosHealthIndicator, SubscriptionsHealthIndicator } from 'nest-cosmos-eventstore';

/** `GET /health`: terminus's answer, each indicator under `info` when up and under `error` when down. */
export type ServiceHealth = HealthCheckResult;

/**
 * `GET /health`, built with @nestjs/terminus: 200 `{ status: 'ok', info, error: {}, details }` when Cosmos DB
 * answers (and no subscriber stopped on a failure), else 503 `{ status: 'error', info, error, details }`. With
 * `SubscriptionsModule`, `subscriptions` reports every subscriber's state and lag. A readiness probe:
 * `GET /health/live` is the liveness one.
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly cosmos: CosmosHealthIndicator,
    @Optional() private readonly subscriptions?: SubscriptionsHealthIndicator,
  ) {}

  /**
   * `GET /health/live`: 200 `{ status: 'ok' }` while the process serves HTTP, whatever Cosmos DB or the
   * subscribers say: a restart would not bring an account back nor resume a subscriber stopped on a failure.
   */
  @Get('live')
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get()
  @HealthCheck()
  check(): Promise<ServiceHealth> {
    const checks: HealthIndicatorFunction[] = [() => this.cosmos.isHealthy()];
    const { subscriptions } = this;
    if (subscriptions) checks.push(() => subscriptions.isHealthy());
    return this.health.check(checks);
  }
}
