import { Controller, Get, Param, Query, UseFilters } from '@nestjs/common';
import { InjectOpaqueStore, type OpaqueStore } from 'nest-cosmos-eventstore';
import { EventStoreExceptionFilter } from 'nest-cosmos-eventstore';
import { checkId, issueToken, queryParams } from '../../http/request-input.js';
import {
  parseMaterializedQuery,
  toMaterializedDto,
  type MaterializedDto,
  type MaterializedPageDto,
  type QueryParams,
} from './store-api.dto.js';

/** Materialized aggregates (the aggregates container), read-only: one document by key, or a query page. */
@Controller('materialized')
@UseFilters(EventStoreExceptionFilter)
export class MaterializedController {
  constructor(@InjectOpaqueStore() private readonly store: OpaqueStore) {}

  /** `GET /materialized?index=&pk=&op=&value=&value2=&limit=&continuationToken=`. */
  @Get()
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
  async get(@Param('pk') pk: string, @Param('sk') sk: string, @Query() params: QueryParams): Promise<MaterializedDto> {
    queryParams(params, []);
    return toMaterializedDto(await this.store.get(checkId('pk', pk), checkId('sk', sk)));
  }
}
