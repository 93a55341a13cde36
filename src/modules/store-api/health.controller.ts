import { Controller, Get, ServiceUnavailableException } from '@nestjs/common';
import { CosmosHealthIndicator, type HealthResult } from './cosmos.health.js';

/** `GET /health`: 200 `{ status: 'ok', info }` when Cosmos DB answers, else 503 `{ status: 'error', error }`. */
@Controller('health')
export class HealthController {
  constructor(private readonly cosmos: CosmosHealthIndicator) {}

  @Get()
  async health(): Promise<HealthResult> {
    const result = await this.cosmos.check();
    // Nest answers an HttpException built from an object with that object as the body.
    if (result.status !== 'ok') throw new ServiceUnavailableException(result);
    return result;
  }
}
