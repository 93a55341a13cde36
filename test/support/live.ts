import type { CosmosClientOptions } from '@azure/cosmos';

/**
 * The real account (or the official emulator) the suites run against when `COSMOS_TEST_ENDPOINT` is set,
 * else `undefined` and they run on the embedded server. `COSMOS_TEST_KEY` is the account key; without it
 * the client signs in keylessly (Microsoft Entra ID through `DefaultAzureCredential`, which needs the
 * "Cosmos DB Built-in Data Contributor" role and, as keyless accounts do, databases created beforehand or
 * a principal allowed to create them). This is the one switch: every fixture of `test/support` asks it.
 */
export interface LiveAccount {
  endpoint: string;
  /** Absent: keyless. */
  key?: string;
}

export function liveAccount(): LiveAccount | undefined {
  const endpoint = process.env.COSMOS_TEST_ENDPOINT?.trim();
  if (!endpoint) return undefined;
  const key = process.env.COSMOS_TEST_KEY?.trim();
  return key ? { endpoint, key } : { endpoint };
}

/** Whether the suites run against a real account (or the emulator) rather than the embedded server. */
export const LIVE = liveAccount() !== undefined;

/** The client options that authenticate to an account: its key, or Entra ID when it has none. */
export async function accountAuth(key: string | undefined): Promise<Pick<CosmosClientOptions, 'key' | 'aadCredentials'>> {
  if (key) return { key };
  const { DefaultAzureCredential } = await import('@azure/identity');
  return { aadCredentials: new DefaultAzureCredential() };
}

/**
 * For tests that prove the embedded server's own patches or powers (splits on demand, its gaps closed):
 * they run on the embedded server and are skipped against a real account, where they prove nothing.
 */
export const itEmbedded: typeof it = LIVE ? it.skip : it;
export const describeEmbedded: typeof describe = LIVE ? describe.skip : describe;
