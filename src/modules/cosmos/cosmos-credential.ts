import type { CosmosClientOptions } from '@azure/cosmos';
import { isMissingPackage } from './cosmos-errors.js';

/** A Microsoft Entra ID credential as @azure/cosmos takes it (`TokenCredential` of @azure/core-auth). */
export type CosmosTokenCredential = NonNullable<CosmosClientOptions['aadCredentials']>;

/** What `defaultAzureCredential` needs of @azure/identity. */
export interface IdentityPackage {
  DefaultAzureCredential: new () => CosmosTokenCredential;
}

/** Loads @azure/identity; a parameter so that a test can make it missing. */
export type IdentityLoader = () => Promise<IdentityPackage>;

const importIdentity: IdentityLoader = () => import('@azure/identity');

/**
 * A `DefaultAzureCredential`, from the optional peer dependency @azure/identity, loaded only now: an app
 * that signs in with a key or its own credential need not install it. When it is missing, the error says
 * which package to install, or what to give instead.
 */
export async function defaultAzureCredential(load: IdentityLoader = importIdentity): Promise<CosmosTokenCredential> {
  let identity: IdentityPackage;
  try {
    identity = await load();
  } catch (err) {
    if (isMissingPackage(err, '@azure/identity')) {
      throw new Error(
        'CosmosModule: signing in without "key" or "credential" uses DefaultAzureCredential from @azure/identity, ' +
          'which is not installed: install it (npm install @azure/identity), or give "key" or "credential"',
        { cause: err },
      );
    }
    throw err;
  }
  return new identity.DefaultAzureCredential();
}
