import type { CosmosClientOptions, RetryOptions } from '@azure/cosmos';
import type { CosmosTokenCredential } from './cosmos-credential.js';

/**
 * How @azure/cosmos retries throttled requests (HTTP 429) unless told otherwise: up to 9 retries within
 * 30 s in all, each after the wait the service asks for in `x-ms-retry-after-ms` (no fixed interval).
 * These are the SDK's own defaults, made explicit so that they show in the options and can be tuned.
 */
export const DEFAULT_COSMOS_RETRY_OPTIONS: Readonly<Required<RetryOptions>> = Object.freeze({
  maxRetryAttemptCount: 9,
  fixedRetryIntervalInMilliseconds: 0,
  maxWaitTimeInSeconds: 30,
});

/** How `CosmosModule` reaches Cosmos DB. */
export interface CosmosModuleOptions {
  /**
   * Account endpoint, e.g. `https://my-account.documents.azure.com:443/`. Required unless
   * `embeddedWhenNoEndpoint` is set.
   */
  endpoint?: string;
  /**
   * Without `endpoint` (undefined), start an embedded in-memory Cosmos DB server and use it, closing it on
   * application shutdown: for local development and e2e tests, never production (the data is lost when
   * the application stops, as a warning says at start-up). Needs the optional peer dependency
   * `@vercel/cosmosdb-server` (a dev dependency of the app), loaded only when this is used. Default `false`:
   * no endpoint is an error. `key` and `credential` must then be left out.
   *
   * @example
   * CosmosModule.forRoot({ endpoint: process.env.COSMOS_ENDPOINT, databaseId: 'eventstore', embeddedWhenNoEndpoint: true })
   */
  embeddedWhenNoEndpoint?: boolean;
  /** Account key. Give `key` or `credential`, not both. */
  key?: string;
  /**
   * A Microsoft Entra ID credential (`TokenCredential`, e.g. a `ManagedIdentityCredential` of
   * @azure/identity) to sign in without a key; its tokens are sent over https only. Without `key` and
   * `credential`, `DefaultAzureCredential` from the optional peer dependency @azure/identity is used (an
   * error says so when that package is not installed).
   *
   * @example
   * CosmosModule.forRoot({ endpoint, credential: new ManagedIdentityCredential(clientId), databaseId: 'eventstore' })
   */
  credential?: CosmosTokenCredential;
  databaseId: string;
  /** Default `events`. */
  eventsContainerId?: string;
  /** Default `aggregates`. */
  aggregatesContainerId?: string;
  /** Create the database and containers at start-up when missing. Default `true`. */
  ensure?: boolean;
  /**
   * How long the start-up checks of `ensure` may take, transient faults (408/449/503, timeouts, lost, cut
   * or refused connections, unresolved hosts) retried with backoff meanwhile; then start-up fails with a
   * `CosmosStartupTimeoutError` whose `cause` is the last fault. Default `DEFAULT_STARTUP_TIMEOUT_MS` (15 s).
   */
  startupTimeoutMs?: number;
  /**
   * Retries of throttled requests (HTTP 429) by @azure/cosmos, set as `connectionPolicy.retryOptions`:
   * field by field over `clientOptions.connectionPolicy.retryOptions`, over `DEFAULT_COSMOS_RETRY_OPTIONS`
   * (9 retries within 30 s, each after the wait the service asks for). The SDK retries nothing else for a
   * write; the event store and the aggregates store retry 408, 503, timeouts and lost connections
   * themselves (`EventStoreModule`'s `retries`).
   *
   * @example
   * CosmosModule.forRoot({ endpoint, key, databaseId: 'eventstore', retryOptions: { maxWaitTimeInSeconds: 10 } })
   */
  retryOptions?: RetryOptions;
  /** Passed to `CosmosClient` as is (connection policy, user agent...); `retryOptions` above takes precedence. */
  clientOptions?: Partial<CosmosClientOptions>;
}

/** What a `useClass`/`useExisting` provider of `CosmosModule.forRootAsync` implements. */
export interface CosmosOptionsFactory {
  createCosmosOptions(): CosmosModuleOptions | Promise<CosmosModuleOptions>;
}
