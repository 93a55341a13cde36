import { ConflictException, Controller, Delete, Get, HttpCode, HttpStatus, NotFoundException, Param, Post, Query } from '@nestjs/common';
import {
  DeadLetterReplayError,
  InjectSubscriptions,
  UnknownDeadLetterError,
  UnknownSubscriberError,
  type DeadLetter,
  type SubscriberLag,
  type Subscriptions,
} from 'nest-cosmos-eventstore';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiParam, ApiTags, type SchemaObject } from '@nestjs/swagger';
import { AdminEndpoint } from '../store-api/index.js';
import { ApiActorHeader, ApiErrors } from '../../http/openapi.js';
import { queryParams, type QueryParams } from '../../http/request-input.js';

const NAME = { name: 'name', description: "The subscriber's (consumer group's) name" } as const;
const LETTER_ID = { name: 'id', description: "The dead letter's id" } as const;
const ADMIN = { admin: true } as const;

/** A dead letter over HTTP: the event's bytes in base64, times in ISO 8601. */
export interface DeadLetterDto {
  id: string;
  handler: string;
  aggregateId: string;
  version: number;
  data: string;
  error: { name: string; message: string };
  attempts: number;
  failedAt: string;
  committedAt?: string;
  instanceId: string;
  policy: DeadLetter['policy'];
}

// ---- The OpenAPI description of the answers above (see http/openapi.ts) ----

const LAG_SCHEMA: SchemaObject = {
  type: 'object',
  required: ['name', 'state', 'estimatedPending', 'behindMs', 'ranges'],
  properties: {
    name: { type: 'string' },
    state: { type: 'string', enum: ['running', 'rebuilding', 'stopped', 'not-started'] },
    estimatedPending: { type: 'integer' },
    behindMs: { type: 'integer' },
    reason: { type: 'string' },
    ranges: { type: 'array', items: { type: 'object', additionalProperties: true, description: 'One feed range: `range`, `owner`, its checkpoint and lag' } },
  },
};

const DEAD_LETTER_SCHEMA: SchemaObject = {
  type: 'object',
  required: ['id', 'handler', 'aggregateId', 'version', 'data', 'error', 'attempts', 'failedAt', 'instanceId', 'policy'],
  properties: {
    id: { type: 'string' },
    handler: { type: 'string' },
    aggregateId: { type: 'string' },
    version: { type: 'integer' },
    data: { type: 'string', format: 'byte', description: "The event's bytes, base64" },
    error: { type: 'object', required: ['name', 'message'], properties: { name: { type: 'string' }, message: { type: 'string' } } },
    attempts: { type: 'integer' },
    failedAt: { type: 'string', format: 'date-time' },
    committedAt: { type: 'string', format: 'date-time' },
    instanceId: { type: 'string' },
    policy: { type: 'string', enum: ['dead-letter', 'stop'] },
  },
};

/**
 * Admin actions on the subscriptions' consumer groups: resume one that stopped on a failure, list its dead
 * letters, replay one (its handler runs again; the record goes once it succeeds) or discard one. A dead
 * letter of the event a group stopped at, once replayed or discarded, is passed over when the group resumes.
 * Every route is an `@AdminEndpoint()`, behind `ADMIN_TOKEN` as the rebuild is. 404 for an unknown
 * subscriber or dead letter.
 */
@Controller('admin/subscriptions/:name')
@AdminEndpoint()
@ApiTags('subscriptions admin')
@ApiBearerAuth('admin')
@ApiActorHeader()
export class SubscriptionsAdminController {
  constructor(@InjectSubscriptions() private readonly subscriptions: Subscriptions) {}

  /** `POST /admin/subscriptions/:name/resume`: 200 `{ resumed, lag }`; 409 when the group is not stopped. */
  @Post('resume')
  @HttpCode(HttpStatus.OK)
  @ApiOperation({ summary: 'Resume a consumer group that stopped on a failure' })
  @ApiParam(NAME)
  @ApiOkResponse({
    description: 'Resumed, with its lag',
    schema: { type: 'object', required: ['resumed', 'lag'], properties: { resumed: { type: 'string' }, lag: LAG_SCHEMA } },
  })
  @ApiErrors({ 404: 'No such subscriber', 409: 'The group is not stopped: nothing to resume', 503: 'Cosmos DB is unavailable; retry later' }, ADMIN)
  async resume(@Param('name') name: string, @Query() query: QueryParams): Promise<{ resumed: string; lag: SubscriberLag }> {
    queryParams(query, []);
    const [before] = await this.call(() => this.subscriptions.lag(name));
    if (before.state !== 'stopped') throw new ConflictException(`subscriber ${JSON.stringify(name)} is ${before.state}, not stopped: nothing to resume`);
    await this.call(() => this.subscriptions.resume(name));
    const [lag] = await this.call(() => this.subscriptions.lag(name));
    return { resumed: name, lag };
  }

  /** `GET /admin/subscriptions/:name/dead-letters`: `{ items }`, oldest first. */
  @Get('dead-letters')
  @ApiOperation({ summary: "The group's dead letters, oldest first" })
  @ApiParam(NAME)
  @ApiOkResponse({ description: 'The dead letters', schema: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: DEAD_LETTER_SCHEMA } } } })
  @ApiErrors({ 404: 'No such subscriber', 503: 'Cosmos DB is unavailable; retry later' }, ADMIN)
  async deadLetters(@Param('name') name: string, @Query() query: QueryParams): Promise<{ items: DeadLetterDto[] }> {
    queryParams(query, []);
    const letters = await this.call(() => this.subscriptions.deadLetters(name));
    return { items: letters.map(toDto) };
  }

  /** `POST /admin/subscriptions/:name/dead-letters/:id/replay`: 200 `{ replayed }`; 409 when the handler fails again (the record stays). */
  @Post('dead-letters/:id/replay')
  @HttpCode(HttpStatus.OK)
  @ApiOperation({ summary: "Run the dead letter's handler again; the record goes once it succeeds" })
  @ApiParam(NAME)
  @ApiParam(LETTER_ID)
  @ApiOkResponse({ description: 'Replayed', schema: { type: 'object', required: ['replayed'], properties: { replayed: { type: 'string' } } } })
  @ApiErrors({ 404: 'No such subscriber or dead letter', 409: 'The handler failed again: the record stays', 503: 'Cosmos DB is unavailable; retry later' }, ADMIN)
  async replay(@Param('name') name: string, @Param('id') id: string, @Query() query: QueryParams): Promise<{ replayed: string }> {
    queryParams(query, []);
    await this.call(() => this.subscriptions.replayDeadLetter(name, id));
    return { replayed: id };
  }

  /** `DELETE /admin/subscriptions/:name/dead-letters/:id`: 200 `{ discarded }`. */
  @Delete('dead-letters/:id')
  @ApiOperation({ summary: 'Discard a dead letter' })
  @ApiParam(NAME)
  @ApiParam(LETTER_ID)
  @ApiOkResponse({ description: 'Discarded', schema: { type: 'object', required: ['discarded'], properties: { discarded: { type: 'string' } } } })
  @ApiErrors({ 404: 'No such subscriber or dead letter', 503: 'Cosmos DB is unavailable; retry later' }, ADMIN)
  async discard(@Param('name') name: string, @Param('id') id: string, @Query() query: QueryParams): Promise<{ discarded: string }> {
    queryParams(query, []);
    await this.call(() => this.subscriptions.discardDeadLetter(name, id));
    return { discarded: id };
  }

  /** Runs a Subscriptions call, answering its errors as HTTP errors. */
  private async call<T>(action: () => Promise<T>): Promise<T> {
    try {
      return await action();
    } catch (err) {
      if (err instanceof UnknownSubscriberError || err instanceof UnknownDeadLetterError) throw new NotFoundException(err.message);
      if (err instanceof DeadLetterReplayError) throw new ConflictException(err.message);
      throw err;
    }
  }
}

function toDto(letter: DeadLetter): DeadLetterDto {
  const dto: DeadLetterDto = {
    id: letter.id,
    handler: letter.handler,
    aggregateId: letter.aggregateId,
    version: letter.version,
    data: Buffer.from(letter.data.buffer, letter.data.byteOffset, letter.data.byteLength).toString('base64'),
    error: letter.error,
    attempts: letter.attempts,
    failedAt: letter.failedAt.toISOString(),
    instanceId: letter.instanceId,
    policy: letter.policy,
  };
  if (letter.committedAt) dto.committedAt = letter.committedAt.toISOString();
  return dto;
}
