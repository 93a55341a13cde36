import { Body, ConflictException, Controller, Get, HttpCode, HttpStatus, Param, Post, Query, UseFilters } from '@nestjs/common';
import {
  ConcurrencyError,
  eventStoreErrorAnswers,
  ExpectedVersionError,
  InjectSnapshotTailStore,
  ValidationError,
  type EventRecord,
  type SnapshotTailStore,
} from 'nest-cosmos-eventstore';
import { EventStoreExceptionFilter } from 'nest-cosmos-eventstore';
import { ApiBearerAuth, ApiBody, ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiParam, ApiQuery, ApiTags } from '@nestjs/swagger';
import { ApiActorHeader, ApiErrors, errorSchema } from '../../http/openapi.js';
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
 * An aggregate's event stream over HTTP: append (201; 409 on an existing version or one that leaves a gap
 * after the stream's last) and read (all or the
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
      400:
        'Invalid input, `field` names it: the body (records, versions, base64 `data`, `ttl`, more than 100 records, or 100 onto a stream ' +
        'that has events), versions of the request that leave a gap between them (`field: \'records\'`), a query parameter, the id, `x-actor`',
      403: "Admin endpoints are off (a configured account without `ADMIN_TOKEN`), or the stream belongs to a repository (`field: 'id'`)",
      409: {
        description:
          'None of the records was stored: a version that exists already (`versions` names them), or a first version that does not follow ' +
          "the stream's last (`lastVersion`, `field: 'records'`): versions follow on without a gap, so the next is `lastVersion` + 1",
        schema: errorSchema(409, {
          versions: { type: 'array', items: { type: 'integer' } },
          lastVersion: { type: 'integer', description: "The stream's last version (0: no stream)" },
          field: { type: 'string' },
        }),
      },
      503: eventStoreErrorAnswers[503].description,
    },
    { body: true, admin: true },
  )
  async append(@Param('id') id: string, @Body() body: unknown, @Query() params: QueryParams): Promise<AppendResultDto> {
    checkId('id', id);
    this.owned.refuseOwned('id', id);
    queryParams(params, []);
    const records = followingOn(parseAppendRequest(body));
    const first = records[0]?.version ?? 1;
    try {
      // All or none: a 409 or 503 then means none of the records was stored by this request. The expected
      // version is checked in the same batch: the stream must end just before the first record, as a
      // repository refuses to replay a stream with a gap.
      await this.store.save(id, records, { atomic: true, expectedVersion: first - 1 });
    } catch (err) {
      throw err instanceof ExpectedVersionError ? explainMismatch(err, records) : err;
    }
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

/**
 * The records in version order (a request may list them in any order), refused (400 naming `records`) when
 * their versions leave a gap between them. Versions the store refuses anyway (not positive integers,
 * repeated) are left to its more precise message.
 */
function followingOn(records: EventRecord[]): EventRecord[] {
  const versions = records.map((r) => r.version);
  if (!versions.every((v) => Number.isSafeInteger(v) && v >= 1) || new Set(versions).size !== versions.length) return records;
  const sorted = [...records].sort((a, b) => a.version - b.version);
  const gap = sorted.findIndex((r, i) => r.version !== sorted[0].version + i);
  if (gap > 0) {
    throw new ValidationError(
      'records',
      `versions ${sorted[gap - 1].version} and ${sorted[gap].version} leave a gap: a request's versions follow on, one after another`,
    );
  }
  return sorted;
}

/**
 * The store's answer to a stream that does not end just before the request's first version, told apart:
 * versions of the request that exist already (`ConcurrencyError`, `versions` naming them, as without the
 * check), or a gap after the stream's last version (409 naming `lastVersion`).
 */
function explainMismatch(err: ExpectedVersionError, records: readonly EventRecord[]): Error {
  const first = records[0].version;
  // Unknown, or the stream moved on to just before the first since: the store's own answer.
  if (err.found < 0 || err.found === first - 1) return err;
  if (err.found >= first) {
    return new ConcurrencyError(err.aggregateId, records.map((r) => r.version).filter((v) => v <= err.found), { cause: err });
  }
  return new ConflictException({
    message:
      `records: the first version is ${first}, but the stream's last is ${err.found}${err.found === 0 ? ' (no stream)' : ''}; ` +
      `versions follow on without a gap: write version ${err.found + 1} next`,
    field: 'records',
    lastVersion: err.found,
  });
}
