import { Inject, Logger, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { CosmosClient, type Container, type CosmosClientOptions, type PluginConfig } from '@azure/cosmos';
import { AGGREGATES_CONTAINER, COSMOS_CLIENT, EVENTS_CONTAINER } from './cosmos.constants.js';
import { closeEmbedded, openAccount, type CosmosAccount } from './cosmos-account.js';
import { defaultAzureCredential } from './cosmos-credential.js';
import { DEFAULT_COSMOS_RETRY_OPTIONS, type CosmosModuleOptions } from './cosmos-options.interface.js';
import {
  ASYNC_OPTIONS_TYPE,
  ConfigurableModuleClass,
  COSMOS_MODULE_OPTIONS,
  OPTIONS_TYPE,
} from './cosmos.module-definition.js';
import {
  CosmosStartupTimeoutError,
  DEFAULT_AGGREGATES_CONTAINER,
  DEFAULT_EVENTS_CONTAINER,
  DEFAULT_STARTUP_TIMEOUT_MS,
  ensureContainers,
  ensureDatabase,
} from './cosmos-infrastructure.js';
import { evictFailedRoutingMaps } from './routing-map-cache.js';
import { CosmosHealthIndicator } from './cosmos.health.js';
import { cosmosTelemetryPlugin } from '../telemetry/index.js';

const COSMOS_ACCOUNT = Symbol('COSMOS_ACCOUNT');
const COSMOS_CONTAINERS = Symbol('COSMOS_CONTAINERS');

interface Containers {
  events: Container;
  aggregates: Container;
}

function checkOptions(options: CosmosModuleOptions): void {
  const problem = (field: string, what: string) =>
    new Error(`CosmosModule: option "${field}" ${what}`);
  if (!options || typeof options !== 'object') throw problem('options', 'must be an object');
  if (options.endpoint === undefined) {
    if (options.embeddedWhenNoEndpoint !== true) {
      throw problem(
        'endpoint',
        'is required: give the account URL, e.g. https://my-account.documents.azure.com:443/, or set ' +
          'embeddedWhenNoEndpoint: true to run on an embedded in-memory server (local development, tests)',
      );
    }
    for (const field of ['key', 'credential'] as const) {
      if (options[field] !== undefined) {
        throw problem(field, 'is given without "endpoint": give the endpoint of the account it belongs to');
      }
    }
  } else if (typeof options.endpoint !== 'string' || !URL.canParse(options.endpoint)) {
    throw problem('endpoint', 'must be the account URL, e.g. https://my-account.documents.azure.com:443/');
  }
  if (options.embeddedWhenNoEndpoint !== undefined && typeof options.embeddedWhenNoEndpoint !== 'boolean') {
    throw problem('embeddedWhenNoEndpoint', 'must be true or false');
  }
  if (options.key !== undefined && (typeof options.key !== 'string' || options.key === '')) {
    throw problem('key', 'must be a non-empty string, or left out to sign in with a credential');
  }
  if (options.credential !== undefined) {
    if (typeof (options.credential as { getToken?: unknown } | null)?.getToken !== 'function') {
      throw problem('credential', 'must be a TokenCredential (an object with getToken()), e.g. from @azure/identity');
    }
    if (options.key !== undefined) throw problem('credential', 'cannot be given with "key": give one of them');
  }
  // @azure/core-rest-pipeline refuses to send a token over plain HTTP: say so before the first request.
  if (options.endpoint !== undefined && options.key === undefined && new URL(options.endpoint).protocol !== 'https:') {
    throw problem(
      'endpoint',
      'must be an https URL to sign in with a credential (Microsoft Entra ID tokens are sent over TLS only); ' +
        'give "key" for a plain-HTTP endpoint such as the emulator',
    );
  }
  if (typeof options.databaseId !== 'string' || options.databaseId === '') throw problem('databaseId', 'is required');
  for (const field of ['eventsContainerId', 'aggregatesContainerId'] as const) {
    if (options[field] !== undefined && (typeof options[field] !== 'string' || options[field] === '')) {
      throw problem(field, 'must be a non-empty string');
    }
  }
  if (
    options.startupTimeoutMs !== undefined &&
    (!Number.isSafeInteger(options.startupTimeoutMs) || options.startupTimeoutMs < 1)
  ) {
    throw problem('startupTimeoutMs', 'must be a positive integer of milliseconds');
  }
  if (options.retryOptions !== undefined) {
    if (options.retryOptions === null || typeof options.retryOptions !== 'object') throw problem('retryOptions', 'must be an object');
    for (const [field, value] of Object.entries(options.retryOptions)) {
      if (!(field in DEFAULT_COSMOS_RETRY_OPTIONS)) {
        throw problem(`retryOptions.${field}`, `is not a retry option; use ${Object.keys(DEFAULT_COSMOS_RETRY_OPTIONS).join(', ')}`);
      }
      if (value !== undefined && (!Number.isSafeInteger(value) || (value as number) < 0)) {
        throw problem(`retryOptions.${field}`, 'must be a non-negative integer');
      }
    }
  }
}

/** The client options with the retry options merged: defaults, then `clientOptions`', then `retryOptions`. */
export function cosmosClientOptions(options: CosmosModuleOptions & { endpoint: string }): CosmosClientOptions {
  const connectionPolicy = options.clientOptions?.connectionPolicy;
  return {
    ...options.clientOptions,
    endpoint: options.endpoint,
    connectionPolicy: {
      ...connectionPolicy,
      retryOptions: { ...DEFAULT_COSMOS_RETRY_OPTIONS, ...connectionPolicy?.retryOptions, ...options.retryOptions },
    },
  };
}

// The last failed request of each client the module created. @azure/cosmos retries some faults itself
// for minutes (a host that does not resolve: 120 times, a second apart) without surfacing them; a start-up
// that runs out of time names the last one it saw here.
const lastFaults = new WeakMap<CosmosClient, { fault?: unknown }>();

function faultRecorder(record: { fault?: unknown }): PluginConfig {
  return {
    on: 'request',
    plugin: async (context, diagnosticNode, next) => {
      try {
        return await next(context);
      } catch (err) {
        record.fault = err;
        throw err;
      }
    },
  };
}

const logger = new Logger('CosmosModule');

async function resolveAccount(options: CosmosModuleOptions): Promise<CosmosAccount> {
  checkOptions(options);
  return openAccount(options, logger);
}

async function createClient(account: CosmosAccount): Promise<CosmosClient> {
  const { options } = account;
  const clientOptions = cosmosClientOptions(options);
  const record: { fault?: unknown } = {};
  // `plugins` is an option @azure/cosmos reads but leaves out of its typings.
  const withPlugins = clientOptions as CosmosClientOptions & { plugins?: PluginConfig[] };
  withPlugins.plugins = [...(withPlugins.plugins ?? []), faultRecorder(record), cosmosTelemetryPlugin()];
  if (options.key !== undefined) clientOptions.key = options.key;
  else clientOptions.aadCredentials = options.credential ?? (await defaultAzureCredential());
  // (With an embedded server the key is its own: nothing above can fail after it started.)
  const client = new CosmosClient(clientOptions);
  lastFaults.set(client, record);
  // One failed partition key range listing would otherwise fail the client's change feed reads for good.
  evictFailedRoutingMaps(client);
  return client;
}

async function openContainers(client: CosmosClient, account: CosmosAccount): Promise<Containers> {
  const { options } = account;
  const eventsId = options.eventsContainerId ?? DEFAULT_EVENTS_CONTAINER;
  const aggregatesId = options.aggregatesContainerId ?? DEFAULT_AGGREGATES_CONTAINER;
  try {
    if (options.ensure === false) {
      const database = client.database(options.databaseId);
      return { events: database.container(eventsId), aggregates: database.container(aggregatesId) };
    }
    // One budget for the database and both containers.
    const deadline = Date.now() + (options.startupTimeoutMs ?? DEFAULT_STARTUP_TIMEOUT_MS);
    const remaining = () => ({ timeoutMs: Math.max(1, deadline - Date.now()) });
    const database = await ensureDatabase(client, options.databaseId, remaining());
    await ensureContainers(database, eventsId, aggregatesId, remaining());
    return { events: database.container(eventsId), aggregates: database.container(aggregatesId) };
  } catch (err) {
    // A failed start-up runs no shutdown hook: release the client's timers, and the embedded server, here.
    client.dispose();
    await closeEmbedded(account, logger);
    const seen = lastFaults.get(client)?.fault;
    if (err instanceof CosmosStartupTimeoutError && err.cause === undefined && seen !== undefined) {
      throw new CosmosStartupTimeoutError(err.operation, err.timeoutMs, seen);
    }
    throw err;
  }
}

/**
 * Connects to Cosmos DB and provides `COSMOS_CLIENT`, `EVENTS_CONTAINER` and `AGGREGATES_CONTAINER`
 * (protosource's Wire ProviderSet), and `CosmosHealthIndicator` (a @nestjs/terminus indicator). Global unless `isGlobal: false`; disposes the client on shutdown.
 * With `embeddedWhenNoEndpoint: true` and no `endpoint`, it starts an embedded in-memory server (for local
 * development and e2e tests; needs the optional peer @vercel/cosmosdb-server) and closes it on shutdown.
 *
 * @example
 * CosmosModule.forRootAsync({
 *   imports: [ConfigModule],
 *   inject: [ConfigService],
 *   useFactory: (config: ConfigService) => ({
 *     endpoint: config.getOrThrow('COSMOS_ENDPOINT'),
 *     key: config.get('COSMOS_KEY'),
 *     databaseId: 'eventstore',
 *   }),
 * })
 *
 * @example
 * // Without COSMOS_ENDPOINT, an embedded server (data in memory only):
 * CosmosModule.forRoot({ endpoint: process.env.COSMOS_ENDPOINT, key: process.env.COSMOS_KEY, databaseId: 'eventstore', embeddedWhenNoEndpoint: true })
 */
@Module({
  providers: [
    { provide: COSMOS_ACCOUNT, useFactory: resolveAccount, inject: [COSMOS_MODULE_OPTIONS] },
    { provide: COSMOS_CLIENT, useFactory: createClient, inject: [COSMOS_ACCOUNT] },
    { provide: COSMOS_CONTAINERS, useFactory: openContainers, inject: [COSMOS_CLIENT, COSMOS_ACCOUNT] },
    { provide: EVENTS_CONTAINER, useFactory: (c: Containers) => c.events, inject: [COSMOS_CONTAINERS] },
    { provide: AGGREGATES_CONTAINER, useFactory: (c: Containers) => c.aggregates, inject: [COSMOS_CONTAINERS] },
    CosmosHealthIndicator,
  ],
  exports: [COSMOS_CLIENT, EVENTS_CONTAINER, AGGREGATES_CONTAINER, CosmosHealthIndicator],
})
export class CosmosModule extends ConfigurableModuleClass implements OnApplicationShutdown {
  constructor(
    @Inject(COSMOS_CLIENT) private readonly client: CosmosClient,
    @Inject(COSMOS_ACCOUNT) private readonly account: CosmosAccount,
  ) {
    super();
  }

  static override forRoot(options: typeof OPTIONS_TYPE): DynamicModule {
    return super.forRoot(options);
  }

  static override forRootAsync(options: typeof ASYNC_OPTIONS_TYPE): DynamicModule {
    if (!options?.useFactory && !options?.useClass && !options?.useExisting) {
      throw new Error(
        'CosmosModule.forRootAsync: give one of useFactory (with inject), useClass or useExisting ' +
          '(a provider implementing createCosmosOptions())',
      );
    }
    return super.forRootAsync(options);
  }

  async onApplicationShutdown(): Promise<void> {
    try {
      this.client.dispose();
    } catch (err) {
      logger.error(`disposing the Cosmos client failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    // After the client: no request of it may still be on its way to the server.
    await closeEmbedded(this.account, logger);
  }
}
