import type { CosmosClient, Database, PartitionKeyDefinition } from '@azure/cosmos';
import { Logger } from '@nestjs/common';
import { statusOf } from './cosmos-errors.js';

const logger = new Logger('CosmosModule');

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
 * An existing container with another partition key path is an error, not a silent misconfiguration; one of
 * another partition-key definition version (as protosource's Go `EnsureContainers` creates) is accepted.
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
 * and fails with a message naming `usedBy` when it exists with another partition key path.
 *
 * An existing container is accepted whatever its partition-key definition version: protosource's
 * `EnsureContainers` (Go) sends none, so the service default applies, and refusing those containers would
 * keep a service sharing the account with a Go one from starting. A version 1 container caps partition key
 * values at 101 bytes (longer aggregate ids are refused by Cosmos DB on write): that is logged as a warning.
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
  if (paths.length !== 1 || paths[0] !== path) {
    throw new Error(
      `container ${JSON.stringify(id)} exists with partition key ${JSON.stringify(paths)}; ${usedBy} needs ` +
        `${JSON.stringify([path])}: point it at another container or recreate this one`,
    );
  }
  // No version in the definition: the container was created with version 1, the service's old default.
  const version = resource?.partitionKey?.version ?? 1;
  if (version !== 2) {
    logger.warn(
      `container ${JSON.stringify(id)} has partition-key definition version ${version}: partition key values ` +
        'are limited to 101 bytes there (2 KB with version 2), so longer aggregate ids will be refused',
    );
  }
}
