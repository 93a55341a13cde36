import type { CosmosClientOptions, PluginConfig } from '@azure/cosmos';
import { Inject, Module, type DynamicModule, type LoggerService, type ModuleMetadata, type Provider, type Type } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import {
  CosmosModule,
  EventStoreModule,
  OnStoredEvent,
  Subscriber,
  SUBSCRIPTIONS,
  SubscriptionsModule,
  type EventRecord,
  type Store,
  type SubscribedEvent,
  type Subscriptions,
  type SubscriptionsModuleOptions,
} from '../../src/index.js';
import { CapturingLogger } from './app.js';

/** One handler call, as the test subscribers record it. */
export interface Delivery {
  instance: string;
  subscriber: string;
  aggregateId: string;
  version: number;
  attempt: number;
  /** Order of the call among all calls of the test. */
  seq: number;
}

/** Every handler call of a test, across instances. */
export class DeliveryLog {
  readonly deliveries: Delivery[] = [];

  record(delivery: Omit<Delivery, 'seq'>): void {
    this.deliveries.push({ ...delivery, seq: this.deliveries.length });
  }

  of(subscriber: string): Delivery[] {
    return this.deliveries.filter((d) => d.subscriber === subscriber);
  }
}

/** Token of the shared `DeliveryLog` and of the instance's name, for test subscribers to inject. */
export const DELIVERY_LOG = Symbol('DELIVERY_LOG');
export const INSTANCE_NAME = Symbol('INSTANCE_NAME');

/** Records every event it is handed, as `recorder`, under its instance's name. */
@Subscriber({ name: 'recorder', maxItemCount: 10 })
export class Recorder {
  constructor(
    @Inject(DELIVERY_LOG) private readonly log: DeliveryLog,
    @Inject(INSTANCE_NAME) private readonly instance: string,
  ) {}

  @OnStoredEvent()
  async record({ streamId: aggregateId, version, attempt }: SubscribedEvent): Promise<void> {
    this.log.record({ instance: this.instance, subscriber: 'recorder', aggregateId, version, attempt });
    // Yield, as a handler that writes somewhere would: other ranges' readers interleave.
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Every version 1..count of every aggregate delivered, each delivery of v after one of v-1. */
export function expectAtLeastOnceInOrder(deliveries: Delivery[], aggregates: string[], count: number): void {
  for (const aggregateId of aggregates) {
    const versions = deliveries.filter((d) => d.aggregateId === aggregateId).map((d) => d.version);
    const seen = new Set<number>();
    for (const version of versions) {
      if (version > 1 && !seen.has(version - 1)) {
        throw new Error(`${aggregateId}: version ${version} delivered before ${version - 1} (${versions.join(',')})`);
      }
      seen.add(version);
    }
    expect([...seen].sort((x, y) => x - y)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
  }
}

export const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

/**
 * Appends versions `from`..`to` to each aggregate in chunks of 1 to `maxChunk` (one transactional batch
 * each), all writers at once; `onSaved` hears each aggregate's highest saved version as it grows.
 */
export async function writeConcurrently(
  store: Store,
  aggregates: string[],
  from: number,
  to: number,
  { maxChunk, onSaved }: { maxChunk: number; onSaved?: (aggregateId: string, version: number) => void },
): Promise<void> {
  await Promise.all(
    aggregates.map(async (aggregateId, a) => {
      for (let version = from; version <= to; ) {
        const size = Math.min(to - version + 1, 1 + ((version + a) % maxChunk));
        const records: EventRecord[] = Array.from({ length: size }, (_, i) => ({ version: version + i, data: encode({ n: version + i }) }));
        await store.save(aggregateId, records);
        version += size;
        onSaved?.(aggregateId, version - 1);
      }
    }),
  );
}

/** A service instance under test: a Nest application context with the subscriptions running. */
export interface Instance {
  name: string;
  module: TestingModule;
  subscriptions: Subscriptions;
  logger: CapturingLogger;
  /**
   * Makes every later Cosmos DB call of this instance fail, as a crashed or cut-off host would; with `leases`,
   * only its calls to the leases container (it goes on reading and writing elsewhere, but cannot renew).
   */
  cut(what?: 'all' | 'leases'): void;
  /** Undoes `cut`: the instance's calls reach Cosmos DB again, as when a network partition heals. */
  heal(): void;
  close(): Promise<void>;
}

/**
 * Settings that keep the tests fast: a lease of 3 s, renewed every 300 ms, polls every 20 ms. The lease is
 * long enough that a GC or event-loop stall of a slow CI machine does not let it lapse (a takeover would
 * legitimately deliver again, breaking the tests that count deliveries under a healthy lease).
 */
export const FAST: SubscriptionsModuleOptions = {
  leaseDurationMs: 3_000,
  renewIntervalMs: 300,
  pollIntervalMs: 20,
  retry: { attempts: 3, initialDelayMs: 5, maxDelayMs: 20 },
  shutdownTimeoutMs: 5_000,
  // One lease per physical partition, as the suites written before sub-range leases expect; the suites about
  // sharing one partition set their own.
  leases: 1,
};

export interface InstanceOptions {
  name: string;
  endpoint: string;
  key: string;
  databaseId: string;
  subscribers: Array<Type<unknown>>;
  log: DeliveryLog;
  options?: SubscriptionsModuleOptions;
  providers?: Provider[];
  imports?: ModuleMetadata['imports'];
}

/** Holds what the test shares with its subscribers; global, so the feature module's subscribers see it. */
@Module({})
class TestContextModule {}

function testContext(providers: Provider[]): DynamicModule {
  const tokens = providers.map((p) => (typeof p === 'function' ? p : p.provide));
  return { module: TestContextModule, global: true, providers, exports: tokens };
}

export async function startInstance(options: InstanceOptions): Promise<Instance> {
  let cut: 'all' | 'leases' | undefined;
  const leasesPath = `/colls/${options.options?.leasesContainerId ?? 'leases'}`;
  const network: PluginConfig = {
    on: 'operation',
    plugin: async (context, diagnostics, next) => {
      if (cut === 'all' || (cut === 'leases' && context.path?.includes(leasesPath))) {
        throw Object.assign(new Error('connection refused (test cut the network)'), { code: 'ECONNREFUSED' });
      }
      return next(context);
    },
  };
  const logger = new CapturingLogger();
  const module = await Test.createTestingModule({
    imports: [
      CosmosModule.forRoot({
        endpoint: options.endpoint,
        // Empty for a keyless live account: the module then signs in with Entra ID.
        ...(options.key ? { key: options.key } : {}),
        databaseId: options.databaseId,
        // `plugins` is read by the SDK but hidden from its typings.
        clientOptions: { plugins: [network] } as Partial<CosmosClientOptions>,
      }),
      EventStoreModule.forRoot(),
      SubscriptionsModule.forRoot({ ...FAST, instanceId: options.name, ...options.options }),
      SubscriptionsModule.forFeature(options.subscribers),
      testContext([
        { provide: DELIVERY_LOG, useValue: options.log },
        { provide: INSTANCE_NAME, useValue: options.name },
        ...(options.providers ?? []),
      ]),
      ...(options.imports ?? []),
    ],
  })
    .setLogger(logger as LoggerService)
    .compile();
  await module.init();
  let closed = false;
  return {
    name: options.name,
    module,
    subscriptions: module.get<Subscriptions>(SUBSCRIPTIONS),
    logger,
    cut: (what = 'all') => (cut = what),
    heal: () => (cut = undefined),
    async close() {
      if (closed) return;
      closed = true;
      await module.close();
    },
  };
}

/** Resolves when `condition` holds, polling; fails with `what` after `timeoutMs`. */
export async function eventually(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A promise with its resolve, to hold a handler until the test lets it go. */
export function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}
