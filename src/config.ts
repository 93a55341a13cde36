/**
 * `nest-cosmos-eventstore/config`: the library's configuration from environment variables, one @nestjs/config
 * `registerAs` namespace per module, validated with zod; a bad variable fails the start with one line naming
 * it. A separate entry, so the main one imports without @nestjs/config installed.
 *
 * @example
 * @Module({
 *   imports: [
 *     CosmosModule.forRootAsync(cosmosConfig.asProvider()),
 *     EventStoreModule.forRootAsync(eventStoreConfig.asProvider()),
 *     SubscriptionsModule.forRootAsync(subscriptionsConfig.asProvider()),
 *   ],
 * })
 * export class AppModule {}
 */
export * from './config/index.js';
