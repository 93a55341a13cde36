export {
  EventStoreModule,
  type EventStoreModuleAsyncOptions,
  type EventStoreModuleOptions,
  type EventStoreModuleRootOptions,
  type EventStoreOptionsFactory,
} from './event-store.module.js';
export { AGGREGATE_STORE, OPAQUE_STORE, SNAPSHOT_TAIL_STORE, STORE } from './event-store.constants.js';
export {
  InjectAggregateStore,
  InjectOpaqueStore,
  InjectSnapshotTailStore,
  InjectStore,
} from './event-store.decorators.js';
export type {
  AggregateKeys,
  AggregateStore,
  DeleteStreamOptions,
  EventRecord,
  ExpectedVersion,
  GsiKeys,
  GsiSlots,
  History,
  LoadRangeOptions,
  Materializable,
  OpaqueData,
  OpaqueQuery,
  OpaqueQueryResult,
  OpaqueStore,
  OperationOptions,
  ReadAllItem,
  ReadAllOptions,
  ReadAllStore,
  ReadStreamOptions,
  SaveAggregateOptions,
  StoreSaveOptions,
  SnapshotTailStore,
  SortCondition,
  SortOperator,
  Store,
  StreamingStore,
  StreamLifecycleStore,
  EventRecordMetadata,
} from './event-store.interfaces.js';
export { SORT_OPERATORS } from './event-store.interfaces.js';
export {
  ConcurrencyError,
  EventStoreError,
  ExpectedVersionError,
  isConflict,
  isOutcomeUnknown,
  NotFoundError,
  ValidationError,
  WriteOutcomeUnknownError,
} from './event-store.errors.js';
export {
  classifyBatchFailure,
  DEFAULT_STORE_RETRY_OPTIONS,
  isLostConnection,
  isTransientReadFailure,
  resolveRetryOptions,
  retryTransient,
  type BatchFailure,
  type StoreRetryOptions,
} from './transient-faults.js';
export { CosmosEventStore } from './cosmos-event-store.js';
export { MAX_EVENT_TYPE_BYTES, STREAM_DELETED_TYPE } from './event-documents.js';
export { DEFAULT_COMPRESS_THRESHOLD, DEFAULT_READ_ALL_SETTLE_SECONDS, type EventStoreOptions } from './event-store-base.js';
export { CosmosOpaqueStore, type CosmosOpaqueStoreOptions } from './cosmos-opaque-store.js';
export { compressAtOrAbove, decodeAggregateBody, decompressIfGzipped } from './aggregate-documents.js';
export {
  isTipStore,
  TIP_DOCUMENT_ID,
  type ReadTipOptions,
  type SaveWithTipOptions,
  type StoredTip,
  type TipBody,
  type TipDocument,
  type TipStore,
} from './tip-store.js';
export {
  isTrackedAggregateStore,
  isTrackedOpaqueStore,
  type TrackedAggregateStore,
  type TrackedOpaqueStore,
  type TrackedPut,
} from './tracked-opaque-store.js';
