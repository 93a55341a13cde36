/**
 * `nest-cosmos-eventstore/cqrs`: a durable bridge from the event store to @nestjs/cqrs's `@EventsHandler`s and
 * `@Saga`s (see `CqrsBridgeModule`). A separate entry, so the main one imports without @nestjs/cqrs installed.
 */
export * from './modules/cqrs/index.js';
