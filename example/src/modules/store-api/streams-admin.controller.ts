import { Body, ConflictException, Controller, Delete, HttpCode, HttpStatus, NotFoundException, Param, Post, Query, UseFilters } from '@nestjs/common';
import {
  EventStoreError,
  EventStoreExceptionFilter,
  InjectSnapshotTailStore,
  STREAM_DELETED_TYPE,
  ValidationError,
  type EventRecord,
  type SnapshotTailStore,
  type StreamLifecycleStore,
} from 'nest-cosmos-eventstore';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiParam, ApiQuery, ApiTags } from '@nestjs/swagger';
import { ApiActorHeader, ApiErrors } from '../../http/openapi.js';
import { bodyFields, checkId, integerParam, queryParams } from '../../http/request-input.js';
import { AdminEndpoint } from './admin-token.guard.js';
import { OwnedStreams } from './owned-streams.js';
import type { QueryParams } from './store-api.dto.js';

const STREAM_ID = { name: 'streamId', description: 'The stream id, URL-encoded (`Order%2Fo-1`, `example_app_order_v1%23px`)' };

/**
 * Admin repairs of any event stream, repositories' and protosource's included (a stream poisoned before the
 * encoding guard existed, issue 20, can be erased here, or cut at a snapshot): `DELETE /admin/streams/:streamId` erases it
 * (a tombstone for the read models, then every document of the stream; `deleteStream`) and
 * `POST /admin/streams/:streamId/truncate?before=N` removes its events before version N (`truncateBefore`;
 * the last event always stays). Materialized documents are not touched: erase an order with
 * `DELETE /admin/orders/:id`, which takes them too. A repository's stream is cut only where a snapshot is the
 * first record kept (409 otherwise): what is left must give the aggregate's state, and a read model rebuilt from
 * the change feed must meet the aggregate before its later events; `POST /admin/orders/:id/truncate` writes
 * that snapshot and cuts there.
 */
@Controller('admin/streams')
@UseFilters(EventStoreExceptionFilter)
@AdminEndpoint()
@ApiTags('streams admin')
@ApiBearerAuth('admin')
@ApiActorHeader()
export class StreamsAdminController {
  constructor(
    @InjectSnapshotTailStore() private readonly store: SnapshotTailStore,
    private readonly ownedStreams: OwnedStreams,
  ) {}

  /** 200 `{ erased: true }`; 404 when the stream has no record left to erase (unknown, or erased before). */
  @Delete(':streamId')
  @ApiOperation({ summary: 'Erase any stream: a tombstone for the read models, then every document of the stream' })
  @ApiParam(STREAM_ID)
  @ApiOkResponse({ description: 'Erased', schema: { type: 'object', required: ['erased'], properties: { erased: { type: 'boolean', enum: [true] } } } })
  @ApiErrors({ 404: 'The stream has no events (unknown, or erased before)', 503: 'Cosmos DB is unavailable; retry later' }, { body: true, admin: true })
  async erase(@Param('streamId') streamId: string, @Body() body: unknown, @Query() query: QueryParams): Promise<{ erased: true }> {
    queryParams(query, []);
    bodyFields(body, [], { required: false });
    checkId('streamId', streamId);
    const [last] = (await this.store.loadTail(streamId, 1)).records;
    if (!last || last.type === STREAM_DELETED_TYPE) throw new NotFoundException(`stream ${JSON.stringify(streamId)} has no events`);
    await this.lifecycle().deleteStream(streamId);
    return { erased: true };
  }

  /**
   * 200 `{ truncated: true }`; `before` is required, a version of 1 or more; 404 for a stream without events;
   * 409 for a repository's stream when the first record kept would not be a snapshot.
   */
  @Post(':streamId/truncate')
  @HttpCode(HttpStatus.OK)
  @ApiOperation({ summary: "Remove a stream's events before a version (its last event always stays)" })
  @ApiParam(STREAM_ID)
  @ApiQuery({ name: 'before', required: true, description: 'The first version to keep: an integer of at least 1', schema: { type: 'integer', minimum: 1 } })
  @ApiOkResponse({ description: 'Truncated', schema: { type: 'object', required: ['truncated'], properties: { truncated: { type: 'boolean', enum: [true] } } } })
  @ApiErrors(
    {
      404: 'The stream has no events',
      409: "A repository's stream, and the first record kept would not be a snapshot: truncate through the repository (POST /admin/orders/:id/truncate)",
      503: 'Cosmos DB is unavailable; retry later',
    },
    { body: true, admin: true },
  )
  async truncate(@Param('streamId') streamId: string, @Body() body: unknown, @Query() query: QueryParams): Promise<{ truncated: true }> {
    const params = queryParams(query, ['before']);
    bodyFields(body, [], { required: false });
    checkId('streamId', streamId);
    const before = integerParam('before', params.before, 1);
    if (before === undefined) throw new ValidationError('before', 'is required: the first version to keep');
    const [last] = (await this.store.loadTail(streamId, 1)).records;
    if (!last) throw new NotFoundException(`stream ${JSON.stringify(streamId)} has no events`);
    await this.refuseUnsafeCut(streamId, before, last);
    await this.lifecycle().truncateBefore(streamId, before);
    return { truncated: true };
  }

  /**
   * 409 when the cut would leave a repository's stream starting with an event: without the events before it,
   * neither the state nor a read model rebuilt from the change feed (order-stats stops on an order it never
   * saw placed) can be had from what is left. A snapshot as the first record kept covers them; a cut that removes
   * nothing (the record there is gone already) is harmless.
   */
  private async refuseUnsafeCut(streamId: string, before: number, last: EventRecord): Promise<void> {
    const owner = this.ownedStreams.ownerOf(streamId);
    // An erased stream (its tombstone last) has nothing left to rebuild.
    if (owner === undefined || before <= 1 || last.type === STREAM_DELETED_TYPE) return;
    // The store always keeps the last record.
    const firstKept = Math.min(before, last.version);
    if (await owner.snapshotAt(streamId, firstKept)) return;
    throw new ConflictException({
      statusCode: 409,
      error: 'Conflict',
      message:
        `streams under "${owner.prefix}" belong to the ${owner.owner} aggregate, and version ${firstKept} is an event, not a snapshot: ` +
        'cut there, the stream could no longer be replayed and read models rebuilt from the change feed (order-stats) would stop on it. ' +
        (owner.prefix === 'Order/'
          ? 'Truncate through the repository instead (POST /admin/orders/:id/truncate), which writes a snapshot and cuts before it'
          : `Cut at one of its snapshots (a version whose record is the ${owner.owner}'s snapshot), or through its repository where it offers truncate`),
      field: 'before',
    });
  }

  private lifecycle(): StreamLifecycleStore {
    const store = this.store as Partial<StreamLifecycleStore>;
    if (typeof store.deleteStream !== 'function' || typeof store.truncateBefore !== 'function') {
      throw new EventStoreError('the event store cannot truncate or erase streams');
    }
    return store as StreamLifecycleStore;
  }
}
