import { Controller, Get, Param, Query, UseFilters } from '@nestjs/common';
import { eventStoreErrorAnswers, InjectOpaqueStore, SORT_OPERATORS, type OpaqueStore } from 'nest-cosmos-eventstore';
import { EventStoreExceptionFilter } from 'nest-cosmos-eventstore';
import { ApiOkResponse, ApiOperation, ApiParam, ApiQuery, ApiTags } from '@nestjs/swagger';
import { ApiActorHeader, ApiErrors } from '../../http/openapi.js';
import { checkId, issueToken, queryParams } from '../../http/request-input.js';
import {
  MATERIALIZED_PAGE_SCHEMA,
  MATERIALIZED_SCHEMA,
  parseMaterializedQuery,
  toMaterializedDto,
  type MaterializedDto,
  type MaterializedPageDto,
  type QueryParams,
} from './store-api.dto.js';

/** Materialized aggregates (the aggregates container), read-only: one document by key, or a query page. */
@Controller('materialized')
@UseFilters(EventStoreExceptionFilter)
@ApiTags('event store')
@ApiActorHeader()
export class MaterializedController {
  constructor(@InjectOpaqueStore() private readonly store: OpaqueStore) {}

  /** `GET /materialized?index=&pk=&op=&value=&value2=&limit=&continuationToken=`. */
  @Get()
  @ApiOperation({ summary: 'Query materialized documents by partition key (index 0) or an index slot, optionally on the sort key' })
  @ApiQuery({ name: 'pk', required: true, description: 'The partition key (index 0) or the slot key to query' })
  @ApiQuery({ name: 'index', required: false, description: '0 (the partition key) or a slot (default 0)', schema: { type: 'integer', minimum: 0 } })
  @ApiQuery({ name: 'op', required: false, description: 'A condition on the sort key (needs `value`)', enum: [...SORT_OPERATORS] })
  @ApiQuery({ name: 'value', required: false, description: 'The sort key value `op` compares with' })
  @ApiQuery({ name: 'value2', required: false, description: 'The inclusive upper bound of `between`' })
  @ApiQuery({ name: 'limit', required: false, description: 'Items per page, 1-1000 (default 50)', schema: { type: 'integer', minimum: 1, maximum: 1000 } })
  @ApiQuery({ name: 'continuationToken', required: false, description: 'From the previous page of the same query', type: String })
  @ApiOkResponse({ description: 'A page of documents', schema: MATERIALIZED_PAGE_SCHEMA })
  @ApiErrors({
    400: 'Invalid input, `field` names it: `pk` missing, `op` without `value` (or unknown), `value2` without `between`, `limit`, a `continuationToken` not issued for this query, `x-actor`',
    503: 'Cosmos DB is unavailable; retry later',
  })
  async query(@Query() params: QueryParams): Promise<MaterializedPageDto> {
    const { query, scope } = parseMaterializedQuery(params);
    const { items, continuationToken } = await this.store.query(query);
    const page: MaterializedPageDto = { items: items.map(toMaterializedDto) };
    const token = issueToken(scope, continuationToken);
    if (token !== undefined) page.continuationToken = token;
    return page;
  }

  /** `GET /materialized/:pk/:sk`; 404 when no live document is there. */
  @Get(':pk/:sk')
  @ApiOperation({ summary: 'One materialized document by its keys' })
  @ApiParam({ name: 'pk', description: 'The partition key' })
  @ApiParam({ name: 'sk', description: 'The sort key' })
  @ApiOkResponse({ description: 'The document', schema: MATERIALIZED_SCHEMA })
  @ApiErrors({ 404: 'No live document there', 500: eventStoreErrorAnswers[500].description, 503: 'Cosmos DB is unavailable; retry later' })
  async get(@Param('pk') pk: string, @Param('sk') sk: string, @Query() params: QueryParams): Promise<MaterializedDto> {
    queryParams(params, []);
    return toMaterializedDto(await this.store.get(checkId('pk', pk), checkId('sk', sk)));
  }
}
