import { ConflictException, Controller, Delete, Get, HttpCode, HttpStatus, NotFoundException, Param, Post } from '@nestjs/common';
import {
  DeadLetterReplayError,
  InjectSubscriptions,
  UnknownDeadLetterError,
  UnknownSubscriberError,
  type DeadLetter,
  type SubscriberLag,
  type Subscriptions,
} from 'nest-cosmos-eventstore';
import { AdminEndpoint } from '../store-api/index.js';

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

/**
 * Admin actions on the subscriptions' consumer groups: resume one that stopped on a failure, list its dead
 * letters, replay one (its handler runs again; the record goes once it succeeds) or discard one. A dead
 * letter of the event a group stopped at, once replayed or discarded, is passed over when the group resumes.
 * Every route is an `@AdminEndpoint()`, behind `ADMIN_TOKEN` as the rebuild is. 404 for an unknown
 * subscriber or dead letter.
 */
@Controller('admin/subscriptions/:name')
@AdminEndpoint()
export class SubscriptionsAdminController {
  constructor(@InjectSubscriptions() private readonly subscriptions: Subscriptions) {}

  /** `POST /admin/subscriptions/:name/resume`: 200 `{ resumed, lag }`; 409 when the group is not stopped. */
  @Post('resume')
  @HttpCode(HttpStatus.OK)
  async resume(@Param('name') name: string): Promise<{ resumed: string; lag: SubscriberLag }> {
    const [before] = await this.call(() => this.subscriptions.lag(name));
    if (before.state !== 'stopped') throw new ConflictException(`subscriber ${JSON.stringify(name)} is ${before.state}, not stopped: nothing to resume`);
    await this.call(() => this.subscriptions.resume(name));
    const [lag] = await this.call(() => this.subscriptions.lag(name));
    return { resumed: name, lag };
  }

  /** `GET /admin/subscriptions/:name/dead-letters`: `{ items }`, oldest first. */
  @Get('dead-letters')
  async deadLetters(@Param('name') name: string): Promise<{ items: DeadLetterDto[] }> {
    const letters = await this.call(() => this.subscriptions.deadLetters(name));
    return { items: letters.map(toDto) };
  }

  /** `POST /admin/subscriptions/:name/dead-letters/:id/replay`: 200 `{ replayed }`; 409 when the handler fails again (the record stays). */
  @Post('dead-letters/:id/replay')
  @HttpCode(HttpStatus.OK)
  async replay(@Param('name') name: string, @Param('id') id: string): Promise<{ replayed: string }> {
    await this.call(() => this.subscriptions.replayDeadLetter(name, id));
    return { replayed: id };
  }

  /** `DELETE /admin/subscriptions/:name/dead-letters/:id`: 200 `{ discarded }`. */
  @Delete('dead-letters/:id')
  async discard(@Param('name') name: string, @Param('id') id: string): Promise<{ discarded: string }> {
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
