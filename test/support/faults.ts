import { CosmosClient, type Container, type CosmosClientOptions, type PluginConfig } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import { ensureContainers, ensureDatabase } from '../../src/modules/cosmos/index.js';
import { CosmosEventStore } from '../../src/modules/event-store/index.js';
import {
  startEmbeddedCosmos,
  startFaultProxy,
  type EmbeddedCosmos,
  type FaultProxy,
  type FaultProxyOptions,
} from '../../src/modules/embedded-cosmos/index.js';
import { clientWithPlugins, liveCosmos } from './cosmos.js';
import { accountAuth, liveAccount } from './live.js';

/**
 * The embedded server behind a fault proxy: `events` goes through the proxy, `directEvents` straight to the
 * server (another writer elsewhere, or a look at what is really stored, without faults).
 */
export interface FaultyCosmos {
  cosmos: EmbeddedCosmos;
  proxy: FaultProxy;
  client: CosmosClient;
  events: Container;
  directEvents: Container;
  close(): Promise<void>;
}

export interface FaultyCosmosOptions {
  proxy?: Omit<FaultProxyOptions, 'target'>;
  client?: Partial<CosmosClientOptions>;
  /** Request plugins of the proxied client (an option @azure/cosmos reads but hides from its typings). */
  plugins?: PluginConfig[];
}

export async function startFaultyCosmos(options: FaultyCosmosOptions = {}): Promise<FaultyCosmos> {
  const account = liveAccount();
  const cosmos = account ? liveCosmos(account) : await startEmbeddedCosmos();
  const proxy = await startFaultProxy({ target: cosmos.endpoint, ...options.proxy });
  const direct = new CosmosClient({ endpoint: cosmos.endpoint, ...(await accountAuth(cosmos.key)) });
  const database = await ensureDatabase(direct, `db-${randomUUID()}`);
  await ensureContainers(database, 'events', 'aggregates');
  const client = proxiedClient(cosmos, proxy, { ...(await accountAuth(cosmos.key)), ...options.client }, options.plugins);
  const events = client.database(database.id).container('events');
  try {
    // The client's first call reads the account document: make it before a test counts or injects anything.
    await events.read();
  } catch (err) {
    client.dispose();
    direct.dispose();
    await proxy.close();
    await cosmos.close();
    throw err;
  }
  proxy.clearRecords();
  return {
    cosmos,
    proxy,
    client,
    events,
    directEvents: database.container('events'),
    async close() {
      // On a real account the test's database goes with it.
      if (account) await database.delete().catch(() => undefined);
      client.dispose();
      direct.dispose();
      await proxy.close();
      await cosmos.close();
    },
  };
}

/** A client of the proxy; no timer-driven account refresh adds requests while a test counts. */
/** A fault-injected Cosmos DB shared by the tests of one file (see `faultyCosmosPerFile`). */
export interface FaultyCosmosPerFile {
  readonly faulty: FaultyCosmos;
  /** A store that writes past the proxy, so faults hit only what the test aims them at. */
  readonly store: CosmosEventStore;
  /** What a test started (service instances, say): closed after it. */
  readonly instances: Array<{ close(): Promise<void> }>;
}

/**
 * Registers the file's hooks: starts a `FaultyCosmos` before its tests, clears the proxy's rules and closes the
 * instances a test started after each, closes it after all. Read its fields inside the tests.
 */
export function faultyCosmosPerFile(): FaultyCosmosPerFile {
  let faulty: FaultyCosmos | undefined;
  let store: CosmosEventStore | undefined;
  const instances: Array<{ close(): Promise<void> }> = [];
  beforeAll(async () => {
    faulty = await startFaultyCosmos();
    store = new CosmosEventStore(faulty.directEvents);
  });
  afterEach(async () => {
    faulty?.proxy.clearRules();
    await Promise.all(instances.splice(0).map((i) => i.close()));
  });
  afterAll(async () => {
    await faulty?.close();
  });
  return {
    get faulty() {
      return faulty!;
    },
    get store() {
      return store!;
    },
    instances,
  };
}

export function proxiedClient(
  cosmos: EmbeddedCosmos,
  proxy: FaultProxy,
  options: Partial<CosmosClientOptions> = {},
  plugins: PluginConfig[] = [],
): CosmosClient {
  const clientOptions: CosmosClientOptions = {
    // The embedded server's key, or the live account's (absent when keyless: then `options` signs in).
    ...(cosmos.key ? { key: cosmos.key } : {}),
    ...options,
    endpoint: proxy.endpoint,
    connectionPolicy: { enableBackgroundEndpointRefreshing: false, ...options.connectionPolicy },
  };
  // An empty plugin list makes @azure/cosmos 4.9 fail on its first request.
  return plugins.length > 0 ? clientWithPlugins(clientOptions, plugins) : new CosmosClient(clientOptions);
}

/** A promise with its resolver outside, to hold a request at the proxy until a test lets it go. */
export function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Polls until `condition` holds (the proxy saw something), failing after `timeoutMs`. */
export async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
