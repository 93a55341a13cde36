import { registerAs } from '@nestjs/config';
import { DEFAULT_LEASES_CONTAINER } from 'nest-cosmos-eventstore';
import { readEnv, type EnvReader } from './env-reader.js';

/** Settings of the change feed subscriptions. */
export interface SubscriptionsConfig {
  /** `COSMOS_LEASES_CONTAINER`, default `leases`: leases, checkpoints and dead letters. */
  leasesContainerId: string;
  /**
   * `SUBSCRIPTIONS_INSTANCE_ID`: this instance's name in leases and logs (letters, digits, `. _ : @ -`); default
   * host name, process id and a random suffix. A shared value is safe (leases also carry a per-start session).
   */
  instanceId?: string;
  /**
   * `SUBSCRIPTIONS_LEASE_SECONDS`, 3 to 3600, default 30: how long a lease outlives its owner's last renewal,
   * so how soon the ranges of an instance that died are read again by another.
   */
  leaseDurationMs?: number;
}

/** Reads `COSMOS_LEASES_CONTAINER`, `SUBSCRIPTIONS_INSTANCE_ID` and `SUBSCRIPTIONS_LEASE_SECONDS`, recording problems on `env`. */
export function readSubscriptionsConfig(env: EnvReader): SubscriptionsConfig {
  const config: SubscriptionsConfig = {
    leasesContainerId: env.resourceId('COSMOS_LEASES_CONTAINER') ?? DEFAULT_LEASES_CONTAINER,
  };
  const instanceId = env.raw('SUBSCRIPTIONS_INSTANCE_ID');
  if (instanceId !== undefined) {
    // A name, shown in logs and lease documents: a restricted alphabet also keeps a pasted key (+ / =) out.
    if (!/^[A-Za-z0-9._:@-]{1,128}$/.test(instanceId)) {
      env.problem('SUBSCRIPTIONS_INSTANCE_ID', 'must be 1 to 128 letters, digits or . _ : @ - (the value is not shown)');
    } else {
      config.instanceId = instanceId;
    }
  }
  const leaseSeconds = env.integer('SUBSCRIPTIONS_LEASE_SECONDS', { min: 3, max: 3600 });
  if (leaseSeconds !== undefined) config.leaseDurationMs = leaseSeconds * 1000;
  return config;
}

/** The subscription settings under the `subscriptions` namespace; inject with `@Inject(subscriptionsConfig.KEY)`. */
export const subscriptionsConfig = registerAs('subscriptions', (): SubscriptionsConfig => readEnv(process.env, readSubscriptionsConfig));
