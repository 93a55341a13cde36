import { Controller, Get, Optional, Query } from '@nestjs/common';
import { HealthCheck, HealthCheckService, type HealthCheckResult, type HealthIndicatorFunction } from '@nestjs/terminus';
import { ApiOkResponse, ApiOperation, ApiResponse, ApiTags, type SchemaObject } from '@nestjs/swagger';
import { ApiActorHeader, ApiErrors } from '../../http/openapi.js';
import { queryParams, type QueryParams } from '../../http/request-input.js';
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
@ApiTags('health')
@ApiActorHeader()
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
  @ApiOperation({ summary: 'Liveness: 200 while the process serves HTTP' })
  @ApiOkResponse({ description: 'Alive', schema: { type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['ok'] } } } })
  @ApiErrors({})
  live(@Query() query: QueryParams): { status: 'ok' } {
    queryParams(query, []);
    return { status: 'ok' };
  }

  @Get()
  @HealthCheck()
  @ApiOperation({ summary: 'Readiness: Cosmos DB answers and no subscriber stopped on a failure' })
  @ApiOkResponse({ description: 'Ready: every indicator under `info` (and `details`)', schema: healthSchema('ok') })
  @ApiResponse({ status: 503, description: 'Not ready: the indicators down under `error`, the others under `info`', content: { 'application/json': { schema: healthSchema('error') } } })
  @ApiErrors({})
  check(@Query() query: QueryParams): Promise<ServiceHealth> {
    queryParams(query, []);
    const checks: HealthIndicatorFunction[] = [() => this.cosmos.isHealthy()];
    const { subscriptions } = this;
    if (subscriptions) checks.push(() => subscriptions.isHealthy());
    return this.health.check(checks);
  }
}

/** terminus's answer with `status` ok (200) or error (503). */
function healthSchema(status: 'ok' | 'error'): SchemaObject {
  const indicator: SchemaObject = {
    type: 'object',
    required: ['status'],
    additionalProperties: true,
    description: '`cosmos`: `{ status, message? }`; `subscriptions`: `{ status, subscribers, message? }` (every subscriber\'s state and lag)',
    properties: { status: { type: 'string', enum: ['up', 'down'] }, message: { type: 'string' } },
  };
  const results: SchemaObject = { type: 'object', additionalProperties: indicator };
  return {
    type: 'object',
    required: ['status', 'info', 'error', 'details'],
    properties: { status: { type: 'string', enum: [status] }, info: results, error: results, details: results },
  };
}
