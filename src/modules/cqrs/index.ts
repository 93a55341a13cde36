export { CqrsBridgeModule, type CqrsBridgeOptions } from './cqrs-bridge.module.js';
export { CqrsEventDispatcher } from './cqrs-bridge.js';
