import type { CosmosClient } from '@azure/cosmos';

/** The part of @azure/cosmos 4.9's internal partition key range cache this works on. */
interface RoutingMapCache {
  collectionRoutingMapByCollectionId: Record<string, Promise<unknown> | undefined>;
  requestCollectionRoutingMap(collectionLink: string, ...rest: unknown[]): Promise<unknown>;
}

const HEALED = Symbol('routing map cache healed');

/**
 * Makes a client forget a failed partition key range listing. @azure/cosmos 4.9 caches the listing of a
 * container's partition key ranges (its routing map) as a promise per container and keeps that promise when
 * it rejects: after one lost connection, cut answer or 503 on that request, every later call that needs
 * the map (change feed reads, `getFeedRanges`, cross-partition queries) fails with the same error for the
 * life of the client. Here a rejected listing is dropped from the cache as it fails, so the next call lists
 * again. Reaches into the SDK's internals (`clientContext.partitionKeyRangeCache`): where they are not as
 * expected it changes nothing and answers false. `CosmosModule` applies it to the client it creates.
 *
 * @example
 * const client = new CosmosClient({ endpoint, key });
 * evictFailedRoutingMaps(client);
 */
export function evictFailedRoutingMaps(client: CosmosClient): boolean {
  const cache = (client as unknown as { clientContext?: { partitionKeyRangeCache?: Partial<RoutingMapCache> & { [HEALED]?: true } } })
    .clientContext?.partitionKeyRangeCache;
  if (!cache || typeof cache.requestCollectionRoutingMap !== 'function' || typeof cache.collectionRoutingMapByCollectionId !== 'object') {
    return false;
  }
  if (cache[HEALED]) return true;
  const request = cache.requestCollectionRoutingMap.bind(cache);
  const byCollection = () => cache.collectionRoutingMapByCollectionId as RoutingMapCache['collectionRoutingMapByCollectionId'];
  cache.requestCollectionRoutingMap = (collectionLink: string, ...rest: unknown[]) => {
    const listing = request(collectionLink, ...rest);
    // The cache stores this very promise under the container's id: drop it there once it fails.
    listing.catch(() => {
      const entries = byCollection();
      for (const [id, cached] of Object.entries(entries)) if (cached === listing) delete entries[id];
    });
    return listing;
  };
  cache[HEALED] = true;
  return true;
}
