export { ProtosourceModule } from './protosource.module.js';
export { getProtosourceRepositoryToken } from './protosource.constants.js';
export { InjectProtosourceRepository } from './protosource.decorators.js';
export {
  ProtosourceEventCodec,
  ProtosourceEventDeserializer,
  PROTOSOURCE_COMPRESS_THRESHOLD,
  type ProtosourceSubscribedMessage,
  type ProtosourceEncoding,
  type ProtosourceEventCodecOptions,
} from './protosource-codec.js';
export {
  AGGREGATE_SORT_KEY,
  protosourceIndexSlots,
  protosourceIndexValue,
  protosourceNamespace,
  protosourcePartitionKey,
  protosourceProjectionSortKey,
  protosourceStreamId,
  UNMAPPED,
  type ProtosourceIndex,
  type ProtosourceIndexes,
} from './protosource-keys.js';
export {
  ProtosourceRepository,
  SKIP,
  SNAPSHOT_ACTOR,
  type LoadedAggregate,
  type ProtosourceAggregateDefinition,
  type ProtosourceCommand,
  type ProtosourceEmitted,
  type ProtosourceEventFields,
  type ProtosourceProjection,
} from './protosource-repository.js';
export {
  isProtosourceCommandError,
  ProtosourceCommandError,
  ProtosourceDecodeError,
  type ProtosourceCommandErrorCode,
} from './protosource.errors.js';
export { ErrorSchema as ApiErrorSchema, type Error as ApiError } from './gen/protosource-runtime/apierror_pb.js';
export { CommandResponseSchema, type CommandResponse } from './gen/protosource-runtime/response_pb.js';
export { HistorySchema, type History as ProtosourceHistory } from './gen/protosource-runtime/history_pb.js';
export { RecordSchema, type Record as ProtosourceRecord } from './gen/protosource-runtime/record_pb.js';
