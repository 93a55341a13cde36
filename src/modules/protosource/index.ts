export {
  ProtosourceEventCodec,
  PROTOSOURCE_COMPRESS_THRESHOLD,
  type ProtosourceEncoding,
  type ProtosourceEventCodecOptions,
} from './protosource-codec.js';
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
