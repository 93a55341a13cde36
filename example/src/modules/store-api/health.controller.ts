import { Controller, Get, Optional, ServiceUnavailableException } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiResponse, ApiTags, type SchemaObject } from '@nestjs/swagger';
import { ApiActorHeader, ApiErrors } from '../../http/openapi.js';
import { SubscriptionsHealthIndicator, type SubscriptionsHealth } from 'nest-cosmos-eventstore';
import { CosmosHealthIndicator, type HealthResult } from 'nest-cosmos-eventstore';

type CosmosHealth = { status: 'up' } | { status: 'down'; message: string };

/** `GET /health`: what each indicator says, under `info` when up and under `error` when down. */
export type ServiceHealth =
  | { status: 'ok'; info: { cosmos: CosmosHealth; subscriptions?: SubscriptionsHealth } }
  | { status: 'error'; error: Record<string, CosmosHealth | SubscriptionsHealth>; info?: Record<string, CosmosHealth | SubscriptionsHealth> };

/**
 * `GET /health`: 200 `{ status: 'ok', info }` when Cosmos DB answers (and no subscriber stopped on a
 * failure), else 503 `{ status: 'error', error, info? }`. With `SubscriptionsModule`, `subscriptions` reports
 * every subscriber's state and lag. A readiness probe: `GET /health/live` is the liveness one.
 */
@Controller('health')
@ApiTags('health')
@ApiActorHeader()
export class HealthController {
  constructor(
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
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get()
  @ApiOperation({ summary: 'Readiness: Cosmos DB answers and no subscriber stopped on a failure' })
  @ApiOkResponse({ description: 'Ready: every indicator under `info`', schema: healthSchema('ok') })
  @ApiResponse({ status: 503, description: 'Not ready: the indicators down under `error`, the others under `info`', content: { 'application/json': { schema: healthSchema('error') } } })
  @ApiErrors({})
  async health(): Promise<ServiceHealth> {
    const [cosmos, subscriptions] = await Promise.all([this.cosmos.check(), this.subscriptions?.check()]);
    const results: Record<string, CosmosHealth | SubscriptionsHealth> = { cosmos: cosmosPart(cosmos) };
    if (subscriptions) results.subscriptions = subscriptions;
    const down = Object.entries(results).filter(([, r]) => r.status === 'down');
    if (down.length === 0) return { status: 'ok', info: results as { cosmos: CosmosHealth } };
    const up = Object.entries(results).filter(([, r]) => r.status === 'up');
    const body: ServiceHealth = { status: 'error', error: Object.fromEntries(down) };
    if (up.length > 0) body.info = Object.fromEntries(up);
    // Nest answers an HttpException built from an object with that object as the body.
    throw new ServiceUnavailableException(body);
  }
}

/** `ServiceHealth` with `status` ok (200) or error (503). */
function healthSchema(status: 'ok' | 'error'): SchemaObject {
  const indicator: SchemaObject = {
    type: 'object',
    required: ['status'],
    additionalProperties: true,
    description: '`cosmos`: `{ status, message? }`; `subscriptions`: `{ status, subscribers, message? }` (every subscriber\'s state and lag)',
    properties: { status: { type: 'string', enum: ['up', 'down'] }, message: { type: 'string' } },
  };
  const results: SchemaObject = { type: 'object', additionalProperties: indicator };
  return status === 'ok'
    ? { type: 'object', required: ['status', 'info'], properties: { status: { type: 'string', enum: ['ok'] }, info: results } }
    : { type: 'object', required: ['status', 'error'], properties: { status: { type: 'string', enum: ['error'] }, error: results, info: results } };
}

function cosmosPart(result: HealthResult): CosmosHealth {
  return result.status === 'ok' ? result.info.cosmos : result.error.cosmos;
}
