import type { EmbeddedCosmos, EmbeddedCosmosOptions } from './embedded-cosmos.js';

export type { EmbeddedCosmos, EmbeddedCosmosOptions, PartitionMerge, PartitionSplit } from './embedded-cosmos.js';
export type { PartitionKeyRange } from './partition-key-ranges.js';
export {
  requestKind,
  startFaultProxy,
  type ActiveRule,
  type CosmosRequestKind,
  type FaultAction,
  type FaultProxy,
  type FaultProxyOptions,
  type FaultRule,
  type ProxiedRequest,
  type ProxyRecord,
} from './fault-proxy.js';

const SERVER_PACKAGE = '@vercel/cosmosdb-server';

/**
 * Starts a Cosmos DB wire-protocol server in this process (see `embedded-cosmos.ts`). The server package,
 * an optional peer dependency, is loaded on the first call only, so the rest of the testing entry (the
 * in-memory stores, `given`, the fault proxy) works without it.
 *
 * @example
 * const cosmos = await startEmbeddedCosmos();
 * const client = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key });
 */
export async function startEmbeddedCosmos(options?: EmbeddedCosmosOptions): Promise<EmbeddedCosmos> {
  let server: typeof import('./embedded-cosmos.js');
  try {
    server = await import('./embedded-cosmos.js');
  } catch (err) {
    const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
    if ((code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') && String(message).includes(SERVER_PACKAGE)) {
      throw new Error(
        `startEmbeddedCosmos needs the optional peer dependency ${SERVER_PACKAGE}, which is not installed: ` +
          `npm install --save-dev ${SERVER_PACKAGE}@1.0.1`,
        { cause: err },
      );
    }
    throw err;
  }
  return server.startEmbeddedCosmos(options);
}
