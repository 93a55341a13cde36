import { DEFAULT_LEASES_CONTAINER, type SubscriptionsModuleOptions } from '../modules/subscriptions/index.js';
import { envSchemas, type EnvReader } from './env-reader.js';

/**
 * Reads `COSMOS_LEASES_CONTAINER` (default `leases`), `SUBSCRIPTIONS_INSTANCE_ID` (this instance's name in
 * leases and logs; default host name, process id and a random suffix) and `SUBSCRIPTIONS_LEASE_SECONDS` (3 to
 * 3600, default 30: how soon the ranges of an instance that died are read by another) into
 * `SubscriptionsModule` options.
 */
export function readSubscriptionsEnv(env: EnvReader): SubscriptionsModuleOptions & { leasesContainerId: string } {
  const config: SubscriptionsModuleOptions & { leasesContainerId: string } = {
    leasesContainerId: env.read('COSMOS_LEASES_CONTAINER', envSchemas.resourceId()) ?? DEFAULT_LEASES_CONTAINER,
  };
  const instanceId = env.read('SUBSCRIPTIONS_INSTANCE_ID', envSchemas.name());
  if (instanceId !== undefined) config.instanceId = instanceId;
  const leaseSeconds = env.read('SUBSCRIPTIONS_LEASE_SECONDS', envSchemas.integer({ min: 3, max: 3600 }));
  if (leaseSeconds !== undefined) config.leaseDurationMs = leaseSeconds * 1000;
  return config;
}
