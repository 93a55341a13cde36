export { AggregateRoot } from './aggregate-root.js';
export {
  Aggregate,
  aggregateSchemaVersion,
  eventTypeOf,
  snapshotFits,
  Gsi,
  On,
  PartitionKey,
  SortKey,
  type AggregateOptions,
  type EventClass,
} from './aggregate-metadata.js';
export { Command, type Evaluation, type Lifecycle } from './command.js';
export {
  CORRELATION_ID_HEADER,
  CorrelationIdInterceptor,
  correlationIdOf,
  currentEventContext,
  isValidCorrelationId,
  MAX_CORRELATION_ID_LENGTH,
  MAX_EVENT_HEADER_NAME_LENGTH,
  MAX_EVENT_HEADER_VALUE_LENGTH,
  MAX_EVENT_HEADERS,
  runInHandlerContext,
  runWithEventContext,
  type EventMetadataContext,
  type HandledEventLike,
} from './event-context.js';
export {
  DomainEvent,
  eventSchemaVersion,
  EventSchemaError,
  eventTypeInfo,
  upcastEnvelope,
  type DomainEventOptions,
  type EventTypeInfo,
  type Upcaster,
} from './event-types.js';
export {
  DEFAULT_EVENT_COMPRESS_THRESHOLD,
  JsonEventSerializer,
  type EventEnvelope,
  type EventSerializer,
} from './event-serializer.js';
export {
  AggregateAlreadyExistsError,
  AggregateNotFoundError,
  CommandContentionError,
  CommandError,
  CommandRejectedError,
  CommandValidationError,
  AggregateVersionMismatchError,
  IdempotencyKeyReusedError,
  InvalidStateError,
  UnreadableStreamError,
} from './event-sourcing.errors.js';
export { getAggregateRepositoryToken } from './event-sourcing.constants.js';
export { InjectAggregateRepository } from './event-sourcing.decorators.js';
export {
  EventSourcingModule,
  type EventSourcingModuleAsyncOptions,
  type EventSourcingModuleOptions,
  type EventSourcingModuleRootOptions,
  type EventSourcingOptionsFactory,
} from './event-sourcing.module.js';
export {
  DEFAULT_COMMAND_RETRY,
  DEFAULT_MAX_ATTEMPTS,
  MAX_IDEMPOTENCY_KEYS,
  AggregateRepository,
  SNAPSHOT_EVENT_TYPE,
  type AggregateClass,
  type AggregatePage,
  type ApplyOptions,
  type EraseOptions,
  type TruncateOptions,
  type LoadAtOptions,
  type CommandRetryOptions,
  type EventContext,
  type HistoryEvent,
  type RepositoryOptions,
  type RepositoryStores,
} from './repository.js';
export {
  EventStoreExceptionFilter,
  EventStoreGraphQLError,
  isCosmosUnavailable,
  type ErrorBody,
} from './event-store-exception.filter.js';
export {
  errorBodySchema,
  errorBodySchemaFor,
  eventStoreErrorAnswers,
  type ErrorAnswer,
  type ErrorBodyJsonSchema,
} from './error-body.schema.js';
