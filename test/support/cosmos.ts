import { CosmosClient, type Container, type CosmosClientOptions, type PluginConfig } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import { ensureContainers, ensureDatabase } from '../../src/modules/cosmos/index.js';
import { startEmbeddedCosmos, type EmbeddedCosmos, type EmbeddedCosmosOptions } from '../../src/modules/embedded-cosmos/index.js';

/** An embedded Cosmos server with a client and a fresh database of our two containers. */
export interface CosmosFixture {
  cosmos: EmbeddedCosmos;
  client: CosmosClient;
  events: Container;
  aggregates: Container;
  close(): Promise<void>;
}

export async function startCosmosFixture(options: EmbeddedCosmosOptions = {}): Promise<CosmosFixture> {
  const cosmos = await startEmbeddedCosmos(options);
  const client = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key });
  const database = await ensureDatabase(client, `db-${randomUUID()}`);
  await ensureContainers(database, 'events', 'aggregates');
  return {
    cosmos,
    client,
    events: database.container('events'),
    aggregates: database.container('aggregates'),
    async close() {
      client.dispose();
      await cosmos.close();
    },
  };
}

/** A client with request plugins: `plugins` is an option the SDK reads but hides from its typings (`@hidden`). */
export function clientWithPlugins(options: CosmosClientOptions, plugins: PluginConfig[]): CosmosClient {
  return new CosmosClient({ ...options, plugins } as CosmosClientOptions);
}
