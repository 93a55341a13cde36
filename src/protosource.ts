/**
 * nest-cosmos-eventstore/protosource: the protosource-compatible mode, for services sharing a Cosmos DB
 * account and aggregates with a Go protosource service. Needs the optional peer `@bufbuild/protobuf` (v2),
 * the same copy your generated code uses.
 */
export * from './modules/protosource/index.js';
