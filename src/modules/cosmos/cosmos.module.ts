import { Inject, Logger, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { CosmosClient, type Container, type CosmosClientOptions } from '@azure/cosmos';
import { AGGREGATES_CONTAINER, COSMOS_CLIENT, EVENTS_CONTAINER } from './cosmos.constants.js';
import { DEFAULT_COSMOS_RETRY_OPTIONS, type CosmosModuleOptions } from './cosmos-options.interface.js';
import {
  ASYNC_OPTIONS_TYPE,
  ConfigurableModuleClass,
  COSMOS_MODULE_OPTIONS,
  OPTIONS_TYPE,
} from './cosmos.module-definition.js';
import {
  DEFAULT_AGGREGATES_CONTAINER,
  DEFAULT_EVENTS_CONTAINER,
  ensureContainers,
  ensureDatabase,
} from './cosmos-infrastructure.js';
import { evictFailedRoutingMaps } from './routing-map-cache.js';

const COSMOS_CONTAINERS = Symbol('COSMOS_CONTAINERS');

interface Containers {
  events: Container;
  aggregates: Container;
}

function checkOptions(options: CosmosModuleOptions): void {
  const problem = (field: string, what: string) =>
    new Error(`CosmosModule: option "${field}" ${what}`);
  if (!options || typeof options !== 'object') throw problem('options', 'must be an object');
  if (typeof options.endpoint !== 'string' || !URL.canParse(options.endpoint)) {
    throw problem('endpoint', 'must be the account URL, e.g. https://my-account.documents.azure.com:443/');
  }
  if (options.key !== undefined && (typeof options.key !== 'string' || options.key === '')) {
    throw problem('key', 'must be a non-empty string, or left out to use DefaultAzureCredential');
  }
  if (typeof options.databaseId !== 'string' || options.databaseId === '') throw problem('databaseId', 'is required');
  for (const field of ['eventsContainerId', 'aggregatesContainerId'] as const) {
    if (options[field] !== undefined && (typeof options[field] !== 'string' || options[field] === '')) {
      throw problem(field, 'must be a non-empty string');
    }
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
export function cosmosClientOptions(options: CosmosModuleOptions): CosmosClientOptions {
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

async function createClient(options: CosmosModuleOptions): Promise<CosmosClient> {
  checkOptions(options);
  const clientOptions = cosmosClientOptions(options);
  if (options.key) {
    clientOptions.key = options.key;
  } else {
    // Keyless (Microsoft Entra ID): loaded only when used.
    const { DefaultAzureCredential } = await import('@azure/identity');
    clientOptions.aadCredentials = new DefaultAzureCredential();
  }
  const client = new CosmosClient(clientOptions);
  // One failed partition key range listing would otherwise fail the client's change feed reads for good.
  evictFailedRoutingMaps(client);
  return client;
}

async function openContainers(client: CosmosClient, options: CosmosModuleOptions): Promise<Containers> {
  const eventsId = options.eventsContainerId ?? DEFAULT_EVENTS_CONTAINER;
  const aggregatesId = options.aggregatesContainerId ?? DEFAULT_AGGREGATES_CONTAINER;
  try {
    const database =
      options.ensure === false ? client.database(options.databaseId) : await ensureDatabase(client, options.databaseId);
    if (options.ensure !== false) await ensureContainers(database, eventsId, aggregatesId);
    return { events: database.container(eventsId), aggregates: database.container(aggregatesId) };
  } catch (err) {
    // A failed start-up runs no shutdown hook: release the client's timers here.
    client.dispose();
    throw err;
  }
}

/**
 * Connects to Cosmos DB and provides `COSMOS_CLIENT`, `EVENTS_CONTAINER` and `AGGREGATES_CONTAINER`
 * (protosource's Wire ProviderSet). Global unless `isGlobal: false`; disposes the client on shutdown.
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
 */
@Module({
  providers: [
    { provide: COSMOS_CLIENT, useFactory: createClient, inject: [COSMOS_MODULE_OPTIONS] },
    { provide: COSMOS_CONTAINERS, useFactory: openContainers, inject: [COSMOS_CLIENT, COSMOS_MODULE_OPTIONS] },
    { provide: EVENTS_CONTAINER, useFactory: (c: Containers) => c.events, inject: [COSMOS_CONTAINERS] },
    { provide: AGGREGATES_CONTAINER, useFactory: (c: Containers) => c.aggregates, inject: [COSMOS_CONTAINERS] },
  ],
  exports: [COSMOS_CLIENT, EVENTS_CONTAINER, AGGREGATES_CONTAINER],
})
export class CosmosModule extends ConfigurableModuleClass implements OnApplicationShutdown {
  private readonly logger = new Logger(CosmosModule.name);

  constructor(@Inject(COSMOS_CLIENT) private readonly client: CosmosClient) {
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

  onApplicationShutdown(): void {
    try {
      this.client.dispose();
    } catch (err) {
      this.logger.error(`disposing the Cosmos client failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
