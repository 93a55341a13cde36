import { CosmosClient, type Container, type CosmosClientOptions, type PluginConfig } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import { ensureContainers, ensureDatabase } from '../../src/modules/cosmos/index.js';
import { startEmbeddedCosmos, type EmbeddedCosmos, type EmbeddedCosmosOptions } from '../../src/modules/embedded-cosmos/index.js';
import { accountAuth, liveAccount, type LiveAccount } from './live.js';

/** An embedded Cosmos server with a client and a fresh database of our two containers. */
export interface CosmosFixture {
  cosmos: EmbeddedCosmos;
  client: CosmosClient;
  events: Container;
  aggregates: Container;
  close(): Promise<void>;
}

/**
 * The account of `COSMOS_TEST_ENDPOINT` and `COSMOS_TEST_KEY` when they are set (see `liveAccount`, the one
 * switch), for the suites that take a fixture: each fixture gets a database of its own, deleted on close.
 * Tests that need the embedded server's own powers (splits) are skipped there (`itEmbedded`).
 */
export function testAccount(): { endpoint: string; key: string } | undefined {
  const account = liveAccount();
  return account ? { endpoint: account.endpoint, key: account.key ?? '' } : undefined;
}

/** A stand-in for `EmbeddedCosmos` naming a real account: nothing to close, no split on demand. */
export function liveCosmos(account: LiveAccount): EmbeddedCosmos {
  return {
    endpoint: account.endpoint,
    // Empty when keyless: clients then sign in with Entra ID (`accountAuth`).
    key: account.key ?? '',
    splitPartition() {
      throw new Error('splitPartition needs the embedded server, not COSMOS_TEST_ENDPOINT');
    },
    mergePartitions() {
      throw new Error('mergePartitions needs the embedded server, not COSMOS_TEST_ENDPOINT');
    },
    close: async () => undefined,
  } as EmbeddedCosmos;
}

export async function startCosmosFixture(options: EmbeddedCosmosOptions = {}): Promise<CosmosFixture> {
  const account = liveAccount();
  const cosmos: EmbeddedCosmos = account ? liveCosmos(account) : await startEmbeddedCosmos(options);
  const client = new CosmosClient({ endpoint: cosmos.endpoint, ...(await accountAuth(cosmos.key)) });
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
