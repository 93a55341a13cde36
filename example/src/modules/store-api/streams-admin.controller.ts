import { Body, Controller, Delete, HttpCode, HttpStatus, NotFoundException, Param, Post, Query, UseFilters } from '@nestjs/common';
import {
  EventStoreError,
  EventStoreExceptionFilter,
  InjectSnapshotTailStore,
  STREAM_DELETED_TYPE,
  ValidationError,
  type SnapshotTailStore,
  type StreamLifecycleStore,
} from 'nest-cosmos-eventstore';
import { bodyFields, checkId, integerParam, queryParams } from '../../http/request-input.js';
import { AdminEndpoint } from './admin-token.guard.js';
import type { QueryParams } from './store-api.dto.js';

/**
 * Admin repairs of any event stream, repositories' and protosource's included (a stream poisoned before the
 * encoding guard existed, issue 20, can be cut or erased here): `DELETE /admin/streams/:streamId` erases it
 * (a tombstone for the read models, then every document of the stream; `deleteStream`) and
 * `POST /admin/streams/:streamId/truncate?before=N` removes its events before version N (`truncateBefore`;
 * the last event always stays). Materialized documents are not touched: erase an order with
 * `DELETE /admin/orders/:id`, which takes them too.
 */
@Controller('admin/streams')
@UseFilters(EventStoreExceptionFilter)
@AdminEndpoint()
export class StreamsAdminController {
  constructor(@InjectSnapshotTailStore() private readonly store: SnapshotTailStore) {}

  /** 200 `{ erased: true }`; 404 when the stream has no record left to erase (unknown, or erased before). */
  @Delete(':streamId')
  async erase(@Param('streamId') streamId: string, @Body() body: unknown, @Query() query: QueryParams): Promise<{ erased: true }> {
    queryParams(query, []);
    bodyFields(body, [], { required: false });
    checkId('streamId', streamId);
    const [last] = (await this.store.loadTail(streamId, 1)).records;
    if (!last || last.type === STREAM_DELETED_TYPE) throw new NotFoundException(`stream ${JSON.stringify(streamId)} has no events`);
    await this.lifecycle().deleteStream(streamId);
    return { erased: true };
  }

  /** 200 `{ truncated: true }`; `before` is required, a version of 1 or more; 404 for a stream without events. */
  @Post(':streamId/truncate')
  @HttpCode(HttpStatus.OK)
  async truncate(@Param('streamId') streamId: string, @Body() body: unknown, @Query() query: QueryParams): Promise<{ truncated: true }> {
    const params = queryParams(query, ['before']);
    bodyFields(body, [], { required: false });
    checkId('streamId', streamId);
    const before = integerParam('before', params.before, 1);
    if (before === undefined) throw new ValidationError('before', 'is required: the first version to keep');
    const [last] = (await this.store.loadTail(streamId, 1)).records;
    if (!last) throw new NotFoundException(`stream ${JSON.stringify(streamId)} has no events`);
    await this.lifecycle().truncateBefore(streamId, before);
    return { truncated: true };
  }

  private lifecycle(): StreamLifecycleStore {
    const store = this.store as Partial<StreamLifecycleStore>;
    if (typeof store.deleteStream !== 'function' || typeof store.truncateBefore !== 'function') {
      throw new EventStoreError('the event store cannot truncate or erase streams');
    }
    return store as StreamLifecycleStore;
  }
}
