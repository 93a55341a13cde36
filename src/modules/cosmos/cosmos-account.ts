import { Logger } from '@nestjs/common';
import type { CosmosModuleOptions } from './cosmos-options.interface.js';
import { isMissingPackage } from './cosmos-errors.js';

/** The account the module talks to, and the embedded server it started for it, if any. */
export interface CosmosAccount {
  /** The module's options, with the endpoint (and key) of the account to use. */
  options: CosmosModuleOptions & { endpoint: string };
  /** Set when `embeddedWhenNoEndpoint` started a server: closed on application shutdown. */
  embedded?: { endpoint: string; close(): Promise<void> };
}

/** What `openAccount` needs of the embedded server's module. */
export interface EmbeddedCosmosPackage {
  startEmbeddedCosmos(): Promise<{ endpoint: string; key: string; close(): Promise<void> }>;
}

/** Loads the embedded server; a parameter so that a test can make it missing. */
export type EmbeddedCosmosLoader = () => Promise<EmbeddedCosmosPackage>;

// Imported only here and only when used: the main entry must not load @vercel/cosmosdb-server (an optional
// peer dependency, for development and tests) in an app that does not ask for the embedded server.
const importEmbedded: EmbeddedCosmosLoader = () => import('../embedded-cosmos/index.js');

const EMBEDDED_PACKAGE = '@vercel/cosmosdb-server';

/**
 * The account of `options`: its `endpoint`, or, without one and with `embeddedWhenNoEndpoint`, an embedded
 * in-memory server started now (with a warning that the data lives in memory only). Logs which account is
 * used and how the client signs in, never the key.
 */
export async function openAccount(
  options: CosmosModuleOptions,
  logger: Logger,
  loadEmbedded: EmbeddedCosmosLoader = importEmbedded,
): Promise<CosmosAccount> {
  if (options.endpoint !== undefined) {
    const signIn =
      options.key !== undefined
        ? 'with an account key'
        : options.credential !== undefined
          ? 'signing in with the given credential'
          : 'signing in with DefaultAzureCredential';
    // The origin only: the path is not needed to recognise the account.
    logger.log(`Cosmos DB at ${new URL(options.endpoint).origin}, database ${JSON.stringify(options.databaseId)}, ${signIn}`);
    return { options: { ...options, endpoint: options.endpoint } };
  }
  let embeddedPackage: EmbeddedCosmosPackage;
  try {
    embeddedPackage = await loadEmbedded();
  } catch (err) {
    if (isMissingPackage(err, EMBEDDED_PACKAGE)) {
      throw new Error(
        `CosmosModule: embeddedWhenNoEndpoint needs the optional peer dependency ${EMBEDDED_PACKAGE}, which is ` +
          `not installed: install it (npm install --save-dev ${EMBEDDED_PACKAGE}@1.0.1), or give "endpoint"`,
        { cause: err },
      );
    }
    throw err;
  }
  const embedded = await embeddedPackage.startEmbeddedCosmos();
  logger.warn(
    `no endpoint given: started an embedded Cosmos DB server at ${embedded.endpoint} (embeddedWhenNoEndpoint). ` +
      'Data is kept in memory only and is lost when the application stops.',
  );
  return { options: { ...options, endpoint: embedded.endpoint, key: embedded.key }, embedded };
}

/** Closes the embedded server of `account`, if any, logging (never throwing) a failure. */
export async function closeEmbedded(account: CosmosAccount, logger: Logger): Promise<void> {
  const embedded = account.embedded;
  if (!embedded) return;
  account.embedded = undefined;
  try {
    await embedded.close();
    logger.log('closed the embedded Cosmos DB server');
  } catch (err) {
    logger.error(`closing the embedded Cosmos DB server failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}
