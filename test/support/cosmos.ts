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

/**
 * A real account for the suites that take a fixture, when `COSMOS_TEST_ENDPOINT` (and `COSMOS_TEST_KEY`) are
 * set: each fixture gets a database of its own, deleted on close. Tests that need the embedded server's own
 * powers (splits, the fault proxy over plain HTTP) are not meant for it: `npm run test:account` runs the rest.
 */
export function testAccount(): { endpoint: string; key: string } | undefined {
  const endpoint = process.env.COSMOS_TEST_ENDPOINT;
  const key = process.env.COSMOS_TEST_KEY;
  if (!endpoint) return undefined;
  if (!key) throw new Error('COSMOS_TEST_ENDPOINT is set without COSMOS_TEST_KEY');
  return { endpoint, key };
}

export async function startCosmosFixture(options: EmbeddedCosmosOptions = {}): Promise<CosmosFixture> {
  const account = testAccount();
  const cosmos: EmbeddedCosmos = account
    ? {
        ...account,
        splitPartition() {
          throw new Error('splitPartition needs the embedded server, not COSMOS_TEST_ENDPOINT');
        },
        mergePartitions() {
          throw new Error('mergePartitions needs the embedded server, not COSMOS_TEST_ENDPOINT');
        },
        close: async () => undefined,
      }
    : await startEmbeddedCosmos(options);
  const client = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key });
  const database = await ensureDatabase(client, `db-${randomUUID()}`);
  await ensureContainers(database, 'events', 'aggregates');
  return {
    cosmos,
    client,
    events: database.container('events'),
    aggregates: database.container('aggregates'),
    async close() {
      if (account) await database.delete().catch(() => undefined);
      client.dispose();
      await cosmos.close();
    },
  };
}

/** A client with request plugins: `plugins` is an option the SDK reads but hides from its typings (`@hidden`). */
export function clientWithPlugins(options: CosmosClientOptions, plugins: PluginConfig[]): CosmosClient {
  return new CosmosClient({ ...options, plugins } as CosmosClientOptions);
}
