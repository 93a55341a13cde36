import {
  Inject,
  Injectable,
  Logger,
  Optional,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
  type Type,
} from '@nestjs/common';
import { checkSdkInternals, SdkInternalsError } from './sdk-adapter.js';
import { recordSubscriberLag } from '../telemetry/index.js';
import { randomBytes } from 'node:crypto';
import type { Container } from '@azure/cosmos';
import { EVENTS_CONTAINER } from '../cosmos/index.js';
import { SubscriberGroup } from './subscriber-group.js';
import { describe, SubscriberRuntime, type ResolvedSubscriber } from './subscriber-runtime.js';
import { LEASES_CONTAINER } from './subscriptions.constants.js';
import { subscriberDefinitionOf } from './subscriptions.decorators.js';
import { SubscriberDefinitionError, UnknownSubscriberError } from './subscriptions.errors.js';
import type {
  DeadLetter,
  EventDeserializer,
  RebuildOptions,
  StartFrom,
  StopGroupOptions,
  SubscriberLag,
  SubscriberStatus,
  Subscriptions,
  SubscriptionsModuleOptions,
} from './subscriptions.interfaces.js';
import { SUBSCRIPTIONS_MODULE_OPTIONS } from './subscriptions.module-definition.js';
import { resolveRetry, resolveSubscriptionsOptions, type ResolvedSubscriptionsOptions } from './subscriptions-options.js';

/** Why a group is stopped when `stopGroup` is given no reason. */
export const DEFAULT_STOP_REASON = 'stopped by an operator';

/** Default wait of `waitForCatchUp`. */
export const DEFAULT_CATCH_UP_TIMEOUT_MS = 30_000;

/** Where `SubscriptionsModule.forFeature` registers its subscribers: the Cosmos DB or the in-memory subscriptions. */
export interface SubscriberRegistry {
  register(instance: object, serializer?: EventDeserializer): void;
}

/** A subscriber instance's settings, its class's decorators read and checked, the module defaults applied. */
export function resolveSubscriber(
  instance: object,
  serializer: EventDeserializer | undefined,
  settings: Pick<ResolvedSubscriptionsOptions, 'retry' | 'onFailure' | 'maxItemCount'>,
): { subscriber: ResolvedSubscriber; startFrom: StartFrom } {
  const type = instance.constructor as Type<unknown>;
  const { options, handlers } = subscriberDefinitionOf(type);
  if (serializer !== undefined && typeof serializer?.deserialize !== 'function') {
    throw new SubscriberDefinitionError(`the serializer of ${type.name} has no deserialize(bytes) method`);
  }
  for (const hook of ['typeOf', 'payloadOf', 'isSnapshot'] as const) {
    if (serializer?.[hook] !== undefined && typeof serializer[hook] !== 'function') {
      throw new SubscriberDefinitionError(`the serializer of ${type.name} has a ${hook} that is not a method`);
    }
  }
  if (!serializer && handlers.some((h) => h.filter.types || h.filter.snapshots)) {
    throw new SubscriberDefinitionError(
      `${type.name} selects events by class, type or as snapshots in @OnStoredEvent() but has no serializer to decode them: ` +
        'give @Subscriber({ serializer }), e.g. new JsonEventSerializer()',
    );
  }
  return {
    subscriber: {
      name: options.name,
      className: type.name,
      instance,
      handlers,
      serializer,
      retry: resolveRetry(options.retry, settings.retry, `@Subscriber(${options.name}).retry`),
      onFailure: options.onFailure ?? settings.onFailure,
      maxItemCount: options.maxItemCount ?? settings.maxItemCount,
      concurrency: options.concurrency ?? 1,
    },
    startFrom: options.startFrom ?? 'beginning',
  };
}

export function duplicateName(name: string): SubscriberDefinitionError {
  return new SubscriberDefinitionError(`two subscribers are named ${JSON.stringify(name)}: a name is a consumer group and must be unique`);
}

/**
 * The subscriptions of this application instance: registered subscribers, started with the application,
 * stopped gracefully before it shuts down (in `onModuleDestroy`, while the Cosmos client is still open).
 */

/** How long the start-up SDK self-test may take before the subscriptions start without its verdict. */
const SDK_CHECK_TIMEOUT_MS = 10_000;
@Injectable()
export class SubscriptionsManager implements Subscriptions, SubscriberRegistry, OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('Subscriptions');
  private readonly groups = new Map<string, SubscriberGroup>();
  private readonly settings: ResolvedSubscriptionsOptions;
  private started = false;
  private currentSession?: string;

  private readonly events: Container;

  constructor(
    // Optional so that a missing CosmosModule gets an error naming it, not Nest's generic one.
    @Optional() @Inject(EVENTS_CONTAINER) events: Container | undefined,
    @Inject(LEASES_CONTAINER) private readonly leases: Container,
    @Inject(SUBSCRIPTIONS_MODULE_OPTIONS) options: SubscriptionsModuleOptions,
  ) {
    this.events = requireEventsContainer(events);
    this.settings = resolveSubscriptionsOptions(options);
  }

  /** The instance id this application writes into leases. */
  get instanceId(): string {
    return this.settings.instanceId;
  }

  /** Adds a subscriber instance (what `SubscriptionsModule.forFeature` does for each class it lists). */
  register(instance: object, serializer?: EventDeserializer): void {
    const { subscriber, startFrom } = resolveSubscriber(instance, serializer, this.settings);
    if (this.groups.has(subscriber.name)) throw duplicateName(subscriber.name);
    const runtime = new SubscriberRuntime(subscriber, this.logger);
    const group = new SubscriberGroup(this.events, this.leases, runtime, startFrom, this.settings, this.logger);
    this.groups.set(subscriber.name, group);
    if (this.started && this.currentSession !== undefined) group.start(this.currentSession);
  }

  async onApplicationBootstrap(): Promise<void> {
    if (!this.settings.autoStart) return;
    if (this.groups.size > 0) await this.checkSdk();
    void this.start();
  }

  /**
   * The start-up self-test of the @azure/cosmos internals the readers rely on (`checkSdkInternals`): a newer
   * SDK that changed one fails the start, naming the part, rather than misreading the change feed. An account
   * that does not answer in time is not the SDK's fault: logged, and the readers' own retries take over.
   */
  private async checkSdk(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), SDK_CHECK_TIMEOUT_MS)));
    try {
      const result = await Promise.race([checkSdkInternals(this.events).then(() => 'ok' as const), timeout]);
      if (result === 'timeout') this.logger.warn(`the @azure/cosmos self-test did not finish within ${SDK_CHECK_TIMEOUT_MS} ms; starting anyway`);
    } catch (err) {
      if (err instanceof SdkInternalsError) throw err;
      this.logger.warn(`the @azure/cosmos self-test could not run (${describe(err)}); starting anyway`);
    } finally {
      clearTimeout(timer);
    }
  }

  async onModuleDestroy(): Promise<void> {
    try {
      await this.stop();
    } catch (err) {
      this.logger.error(`stopping the subscriptions failed: ${describe(err)}`);
    }
  }

  names(): string[] {
    return [...this.groups.keys()];
  }

  status(): SubscriberStatus[] {
    return [...this.groups.values()].map((g) => g.status());
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    // A new session at every start: what an earlier start (or another process with this instance id) still
    // holds is not ours, even under our instance id.
    const session = (this.currentSession = randomBytes(8).toString('hex'));
    if (this.groups.size > 0) {
      this.logger.log(`instance ${this.settings.instanceId} (session ${session}) starting subscribers: ${this.names().join(', ')}`);
    }
    for (const group of this.groups.values()) group.start(session);
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await Promise.all([...this.groups.values()].map((g) => g.stop()));
  }

  async lag(name?: string): Promise<SubscriberLag[]> {
    const groups = name === undefined ? [...this.groups.values()] : [this.group(name)];
    const lags = await Promise.all(groups.map((g) => g.lag()));
    // Each look at the lag (a health probe, an admin call) also feeds the OpenTelemetry lag gauges.
    for (const lag of lags) recordSubscriberLag(lag);
    return lags;
  }

  // Async, as every call of the interface: an unknown name rejects rather than throws.
  async waitForCatchUp(name: string, options: { timeoutMs?: number } = {}): Promise<void> {
    return this.group(name).waitForCatchUp(options.timeoutMs ?? DEFAULT_CATCH_UP_TIMEOUT_MS);
  }

  async rebuild(name: string, options: RebuildOptions = {}): Promise<void> {
    const from = options.from ?? 'beginning';
    this.logger.log(`${name}: rebuilding from ${from instanceof Date ? from.toISOString() : from}`);
    await this.group(name).rebuild(from, options.timeoutMs ?? 2 * this.settings.leaseDurationMs);
    this.logger.log(`${name}: reset; reading again`);
  }

  async stopGroup(name: string, options: StopGroupOptions = {}): Promise<void> {
    const reason = options.reason ?? DEFAULT_STOP_REASON;
    const group = this.group(name);
    this.logger.log(`${name}: stopping the group on every instance (${reason})`);
    await group.stopGroup(reason);
  }

  async resume(name: string): Promise<void> {
    return this.group(name).resume();
  }

  async deadLetters(name: string): Promise<DeadLetter[]> {
    return this.group(name).store.deadLetters();
  }

  async deadLetterPage(name: string, options: { maxItems?: number; continuation?: string } = {}): Promise<{ letters: DeadLetter[]; continuation?: string }> {
    return this.group(name).store.deadLetterPage(options);
  }

  async replayDeadLetter(name: string, id: string): Promise<void> {
    return this.group(name).replayDeadLetter(id);
  }

  async discardDeadLetter(name: string, id: string): Promise<void> {
    return this.group(name).discardDeadLetter(id);
  }

  private group(name: string): SubscriberGroup {
    const group = this.groups.get(name);
    if (!group) throw new UnknownSubscriberError(name);
    return group;
  }
}

/** The events container `SubscriptionsModule.forRoot()` reads, or an error naming the import it needs. */
export function requireEventsContainer(events: Container | undefined): Container {
  if (events) return events;
  throw new Error(
    "SubscriptionsModule.forRoot() reads the events container: import CosmosModule.forRoot() or CosmosModule.forRootAsync() in the application's root module, " +
      'or use SubscriptionsModule.inMemory() with EventStoreModule.inMemory() in tests',
  );
}
