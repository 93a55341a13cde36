import type { CosmosClientOptions, PluginConfig } from '@azure/cosmos';
import { Module, type DynamicModule, type LoggerService, type ModuleMetadata, type Provider, type Type } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import {
  CosmosModule,
  EventStoreModule,
  SUBSCRIPTIONS,
  SubscriptionsModule,
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
        key: options.key,
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
