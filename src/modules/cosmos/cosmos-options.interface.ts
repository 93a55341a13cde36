import type { CosmosClientOptions } from '@azure/cosmos';

/** How `CosmosModule` reaches Cosmos DB. */
export interface CosmosModuleOptions {
  /** Account endpoint, e.g. `https://my-account.documents.azure.com:443/`. */
  endpoint: string;
  /** Account key. Without one, `DefaultAzureCredential` (Microsoft Entra ID) from @azure/identity is used. */
  key?: string;
  databaseId: string;
  /** Default `events`. */
  eventsContainerId?: string;
  /** Default `aggregates`. */
  aggregatesContainerId?: string;
  /** Create the database and containers at start-up when missing. Default `true`. */
  ensure?: boolean;
  /** Passed to `CosmosClient` as is (retry options, connection policy, user agent...). */
  clientOptions?: Partial<CosmosClientOptions>;
}

/** What a `useClass`/`useExisting` provider of `CosmosModule.forRootAsync` implements. */
export interface CosmosOptionsFactory {
  createCosmosOptions(): CosmosModuleOptions | Promise<CosmosModuleOptions>;
}
