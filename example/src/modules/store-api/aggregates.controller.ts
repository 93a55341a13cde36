import { Body, Controller, Get, HttpCode, HttpStatus, Param, Post, Query, UseFilters } from '@nestjs/common';
import { eventStoreErrorAnswers, InjectSnapshotTailStore, type SnapshotTailStore } from 'nest-cosmos-eventstore';
import { EventStoreExceptionFilter } from 'nest-cosmos-eventstore';
import { ApiBearerAuth, ApiBody, ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiParam, ApiQuery, ApiTags } from '@nestjs/swagger';
import { ApiActorHeader, ApiErrors } from '../../http/openapi.js';
import { checkId, queryParams } from '../../http/request-input.js';
import { AdminEndpoint } from './admin-token.guard.js';
import { OwnedStreams } from './owned-streams.js';
import { parseAppendRequest, parseTail, RECORDS_SCHEMA, toRecordDto, type QueryParams, type RecordsDto } from './store-api.dto.js';

const STREAM_ID = { name: 'id', description: 'The stream id (a `/` inside is kept: `Raw/r-1`)' } as const;

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
@ApiTags('event store')
@ApiActorHeader()
export class AggregatesController {
  constructor(
    @InjectSnapshotTailStore() private readonly store: SnapshotTailStore,
    private readonly owned: OwnedStreams,
  ) {}

  /** `POST /aggregates/:id/events` `{ records: [{ version, data, ttl? }] }`. */
  @Post(':id/events')
  @AdminEndpoint()
  @HttpCode(HttpStatus.CREATED)
  @ApiOperation({ summary: 'Append records to a stream, all or none (an admin action; not in a repository\'s streams)' })
  @ApiBearerAuth('admin')
  @ApiParam(STREAM_ID)
  @ApiBody({ schema: RECORDS_SCHEMA })
  @ApiCreatedResponse({
    description: 'How many records were stored',
    schema: { type: 'object', required: ['saved'], properties: { saved: { type: 'integer' } } },
  })
  @ApiErrors(
    {
      400: 'Invalid input, `field` names it: the body (records, versions, base64 `data`, `ttl`, more than 100 records), a query parameter, the id, `x-actor`',
      403: "Admin endpoints are off (a configured account without `ADMIN_TOKEN`), or the stream belongs to a repository (`field: 'id'`)",
      409: 'A version that exists already (`versions`): none of the records was stored',
      503: eventStoreErrorAnswers[503].description,
    },
    { body: true, admin: true },
  )
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
  @ApiOperation({ summary: 'Read a stream, all of it or its newest records, ascending' })
  @ApiParam(STREAM_ID)
  @ApiQuery({ name: 'tail', required: false, description: 'Only the newest N records', schema: { type: 'integer', minimum: 0 } })
  @ApiOkResponse({ description: 'The records (none for an unknown stream)', schema: RECORDS_SCHEMA })
  @ApiErrors({ 500: eventStoreErrorAnswers[500].description, 503: 'Cosmos DB is unavailable; retry later' })
  async read(@Param('id') id: string, @Query() params: QueryParams): Promise<RecordsDto> {
    checkId('id', id);
    const tail = parseTail(params);
    const history = tail === undefined ? await this.store.load(id) : await this.store.loadTail(id, tail);
    return { records: history.records.map(toRecordDto) };
  }
}
