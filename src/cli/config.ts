import { DEFAULT_AGGREGATES_CONTAINER, DEFAULT_EVENTS_CONTAINER } from '../modules/cosmos/index.js';
import { DEFAULT_LEASES_CONTAINER } from '../modules/subscriptions/index.js';

/**
 * Where the CLI works, from the same variables as the library's configuration (the example service's
 * `COSMOS_*`). A small reader of its own until the library's `src/config/` validation can be shared.
 */
export interface CliConfig {
  /** `COSMOS_ENDPOINT` (required). */
  endpoint: string;
  /** `COSMOS_KEY`; absent: Microsoft Entra ID (`DefaultAzureCredential`). A secret: never printed. */
  key?: string;
  /** `COSMOS_DATABASE`, default `eventstore`. */
  databaseId: string;
  /** `COSMOS_EVENTS_CONTAINER`, default `events`. */
  eventsContainerId: string;
  /** `COSMOS_AGGREGATES_CONTAINER`, default `aggregates`. */
  aggregatesContainerId: string;
  /** `COSMOS_LEASES_CONTAINER`, default `leases`. */
  leasesContainerId: string;
}

/** A problem with the command line or the environment: exit code 2, nothing was sent. */
export class CliUsageError extends Error {}

const RESOURCE_ID = /^[^/\\#?]{1,255}$/;

/** Reads and checks the `COSMOS_*` variables; a `CliUsageError` naming every problem (never a value). */
export function readCliConfig(env: NodeJS.ProcessEnv): CliConfig {
  const problems: string[] = [];
  const value = (name: string) => {
    const raw = env[name]?.trim();
    return raw ? raw : undefined;
  };
  const id = (name: string, fallback: string) => {
    const raw = value(name) ?? fallback;
    if (!RESOURCE_ID.test(raw)) problems.push(`${name} must be 1 to 255 characters without / \\ # ?`);
    return raw;
  };
  const endpoint = value('COSMOS_ENDPOINT');
  if (!endpoint) {
    problems.push('COSMOS_ENDPOINT is not set (the account, e.g. https://<account>.documents.azure.com:443/)');
  } else {
    try {
      const url = new URL(endpoint);
      if (url.protocol !== 'https:' && url.protocol !== 'http:') problems.push('COSMOS_ENDPOINT must be an http(s) URL');
      if (url.protocol === 'http:' && !value('COSMOS_KEY')) problems.push('COSMOS_ENDPOINT is plain HTTP: signing in without COSMOS_KEY needs https');
    } catch {
      problems.push('COSMOS_ENDPOINT is not a URL');
    }
  }
  const config: CliConfig = {
    endpoint: endpoint ?? '',
    databaseId: id('COSMOS_DATABASE', 'eventstore'),
    eventsContainerId: id('COSMOS_EVENTS_CONTAINER', DEFAULT_EVENTS_CONTAINER),
    aggregatesContainerId: id('COSMOS_AGGREGATES_CONTAINER', DEFAULT_AGGREGATES_CONTAINER),
    leasesContainerId: id('COSMOS_LEASES_CONTAINER', DEFAULT_LEASES_CONTAINER),
  };
  const key = value('COSMOS_KEY');
  if (key !== undefined) config.key = key;
  if (problems.length > 0) throw new CliUsageError(problems.join('; '));
  return config;
}
