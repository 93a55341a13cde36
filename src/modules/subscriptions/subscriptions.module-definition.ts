import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { SubscriptionsModuleOptions } from './subscriptions.interfaces.js';

export const {
  ConfigurableModuleClass,
  MODULE_OPTIONS_TOKEN: SUBSCRIPTIONS_MODULE_OPTIONS,
  OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<SubscriptionsModuleOptions>()
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createSubscriptionsOptions')
  // Global by default: feature modules register subscribers and inject SUBSCRIPTIONS without importing it.
  .setExtras({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
