export { SubscriptionsModule, type SubscriberDependencies } from './subscriptions.module.js';
export type { InMemorySubscriptionsOptions } from './in-memory-subscriptions.js';
export {
  DEFAULT_LEASES_CONTAINER,
  LEASES_CONTAINER,
  LEASES_PARTITION_KEY_PATH,
  SUBSCRIPTIONS,
} from './subscriptions.constants.js';
export {
  InjectLeasesContainer,
  InjectSubscriptions,
  OnStoredEvent,
  Subscriber,
  type EventHandlerMethod,
  type HandlerDecorator,
  type TypedEventHandlerMethod,
} from './subscriptions.decorators.js';
export type {
  DeadLetter,
  EventDeserializer,
  EventFilter,
  FailurePolicy,
  GroupState,
  OnSubscriberRebuild,
  RangeLag,
  RebuildOptions,
  RetryOptions,
  StartFrom,
  StopGroupOptions,
  SubscribedEvent,
  SubscriberLag,
  SubscriberOptions,
  SubscriberStatus,
  Subscriptions,
  SubscriptionsModuleOptions,
  TypedEventFilter,
} from './subscriptions.interfaces.js';
export {
  DeadLetterReplayError,
  isLeaseLost,
  LeaseLostError,
  RebuildInProgressError,
  SubscriberDefinitionError,
  SubscriptionError,
  SubscriptionTimeoutError,
  UnknownDeadLetterError,
  UnknownSubscriberError,
} from './subscriptions.errors.js';
export {
  SubscriptionsHealthIndicator,
  type SubscriberHealth,
  type SubscriptionsHealth,
} from './subscriptions.health.js';
