/*
 * The application module the CLI test hands to `--app`: the test's consumer group with its real handler,
 * configured from the same COSMOS_* variables as the CLI, as an operator's app module would be.
 */
import { Module } from '@nestjs/common';
import { CosmosModule, EventStoreModule, OnStoredEvent, Subscriber, SubscriptionsModule, type SubscribedEvent } from '../../src/index.js';

/** What the handler does: fail (to make a dead letter) or handle; the test switches it. */
export const behaviour = { fail: true, handled: [] as string[] };

@Subscriber({ name: 'strict', onFailure: 'stop', retry: { attempts: 1, initialDelayMs: 1 } })
export class Strict {
  @OnStoredEvent()
  handle({ streamId, version }: SubscribedEvent): void {
    if (behaviour.fail) throw new Error(`cannot handle ${streamId}@${version}`);
    behaviour.handled.push(`${streamId}@${version}`);
  }
}

@Module({
  imports: [
    // Read when the app starts, not when this file is imported.
    CosmosModule.forRootAsync({
      useFactory: () => ({
        endpoint: process.env.COSMOS_ENDPOINT!,
        key: process.env.COSMOS_KEY,
        databaseId: process.env.COSMOS_DATABASE!,
        ensure: false,
      }),
    }),
    EventStoreModule.forRoot(),
    // One lease: the group stops at the first failing event, as the test reads it (more leases stop on one per reader).
    SubscriptionsModule.forRoot({ pollIntervalMs: 20, leaseDurationMs: 3_000, renewIntervalMs: 300, instanceId: 'fixture-app', leases: 1 }),
    SubscriptionsModule.forFeature([Strict]),
  ],
})
export class FixtureAppModule {}
