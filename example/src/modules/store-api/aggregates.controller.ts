import { Body, Controller, Get, HttpCode, HttpStatus, Param, Post, Query, UseFilters } from '@nestjs/common';
import { InjectSnapshotTailStore, type SnapshotTailStore } from 'nest-cosmos-eventstore';
import { EventStoreExceptionFilter } from 'nest-cosmos-eventstore';
import { checkId, queryParams } from '../../http/request-input.js';
import { AdminEndpoint } from './admin-token.guard.js';
import { OwnedStreams } from './owned-streams.js';
import { parseAppendRequest, parseTail, toRecordDto, type QueryParams, type RecordsDto } from './store-api.dto.js';

/** The answer of a successful append. */
export interface AppendResultDto {
  /** How many records were stored. */
  saved: number;
}

/**
 * An aggregate's event stream over HTTP: append (201, 409 on an existing version) and read (all or the
 * tail). Appending is an admin action (`ADMIN_TOKEN` on a configured account, as `/admin`) and refused (403)
 * in the streams a repository owns (`Order/…`): only its commands write there.
 */
@Controller('aggregates')
@UseFilters(EventStoreExceptionFilter)
export class AggregatesController {
  constructor(
    @InjectSnapshotTailStore() private readonly store: SnapshotTailStore,
    private readonly owned: OwnedStreams,
  ) {}

  /** `POST /aggregates/:id/events` `{ records: [{ version, data, ttl? }] }`. */
  @Post(':id/events')
  @AdminEndpoint()
  @HttpCode(HttpStatus.CREATED)
  async append(@Param('id') id: string, @Body() body: unknown, @Query() params: QueryParams): Promise<AppendResultDto> {
    checkId('id', id);
    this.owned.refuseOwned('id', id);
    queryParams(params, []);
    const records = parseAppendRequest(body);
    // All or none: a 409 or 503 then means none of the records was stored by this request.
    await this.store.save(id, records, { atomic: true });
    return { saved: records.length };
  }

  /** `GET /aggregates/:id/events` (the whole stream) or `?tail=N` (the newest N), ascending either way. */
  @Get(':id/events')
  async read(@Param('id') id: string, @Query() params: QueryParams): Promise<RecordsDto> {
    checkId('id', id);
    const tail = parseTail(params);
    const history = tail === undefined ? await this.store.load(id) : await this.store.loadTail(id, tail);
    return { records: history.records.map(toRecordDto) };
  }
}
