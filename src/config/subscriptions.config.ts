import { registerAs } from '@nestjs/config';
import type { SubscriptionsModuleOptions } from '../modules/subscriptions/index.js';
import { readEnv } from './env-reader.js';
import { readSubscriptionsEnv } from './subscriptions.env.js';

export { readSubscriptionsEnv } from './subscriptions.env.js';

/**
 * `SubscriptionsModule` options from the environment, as the `registerAs` namespace `subscriptions`.
 *
 * @example
 * SubscriptionsModule.forRootAsync(subscriptionsConfig.asProvider())
 */
export const subscriptionsConfig = registerAs('subscriptions', (): SubscriptionsModuleOptions => readEnv(process.env, readSubscriptionsEnv));
