import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { CosmosModuleOptions } from './cosmos-options.interface.js';

export const {
  ConfigurableModuleClass,
  MODULE_OPTIONS_TOKEN: COSMOS_MODULE_OPTIONS,
  OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<CosmosModuleOptions>()
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createCosmosOptions')
  // Global by default so EventStoreModule finds the containers wherever it is imported.
  .setExtras({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
