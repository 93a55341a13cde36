import type { CosmosClient, Database, PartitionKeyDefinition } from '@azure/cosmos';
import { statusOf } from './cosmos-errors.js';

export const DEFAULT_EVENTS_CONTAINER = 'events';
export const DEFAULT_AGGREGATES_CONTAINER = 'aggregates';

/**
 * Creates the database when missing. Idempotent and race-safe: a 409 from a concurrent creator counts as
 * success (`createIfNotExists` alone can throw it).
 */
export async function ensureDatabase(client: CosmosClient, databaseId: string): Promise<Database> {
  try {
    await client.databases.createIfNotExists({ id: databaseId });
  } catch (err) {
    if (statusOf(err) !== 409) throw err;
  }
  return client.database(databaseId);
}

/**
 * Creates the events (`/a`) and aggregates (`/pk`) containers when missing, with partition-key definition
 * version 2 (partition key values up to 2 KB) and `defaultTtl -1` (items expire only by their own `ttl`).
 * An existing container with another partition key is an error, not a silent misconfiguration.
 */
export async function ensureContainers(
  database: Database,
  eventsContainerId: string = DEFAULT_EVENTS_CONTAINER,
  aggregatesContainerId: string = DEFAULT_AGGREGATES_CONTAINER,
): Promise<void> {
  await Promise.all([
    ensureContainer(database, eventsContainerId, '/a'),
    ensureContainer(database, aggregatesContainerId, '/pk'),
  ]);
}

/**
 * Creates one container when missing (partition key `path`, definition version 2, `defaultTtl -1`), race-safe,
 * and fails with a message naming `usedBy` when it exists with another partition key.
 */
export async function ensureContainer(database: Database, id: string, path: string, usedBy = 'the event store'): Promise<void> {
  const partitionKey: PartitionKeyDefinition = { paths: [path], version: 2 };
  try {
    await database.containers.createIfNotExists({ id, partitionKey, defaultTtl: -1 });
  } catch (err) {
    if (statusOf(err) !== 409) throw err;
  }
  // createIfNotExists returns an existing container's definition without comparing it: compare here.
  const { resource } = await database.container(id).read();
  const paths = resource?.partitionKey?.paths ?? [];
  // Version 1 (the default of old containers) caps partition key values at 101 bytes instead of 2 KB.
  const version = resource?.partitionKey?.version ?? 1;
  if (paths.length !== 1 || paths[0] !== path || version !== 2) {
    throw new Error(
      `container ${JSON.stringify(id)} exists with partition key ${JSON.stringify(paths)} (definition version ` +
        `${version}); ${usedBy} needs ${JSON.stringify([path])} with version 2: point it at another container or ` +
        'recreate this one',
    );
  }
}
