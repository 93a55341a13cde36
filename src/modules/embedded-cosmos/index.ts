export { startEmbeddedCosmos, type EmbeddedCosmos, type EmbeddedCosmosOptions } from './embedded-cosmos.js';
export {
  requestKind,
  startFaultProxy,
  type ActiveRule,
  type CosmosRequestKind,
  type FaultAction,
  type FaultProxy,
  type FaultProxyOptions,
  type FaultRule,
  type ProxiedRequest,
  type ProxyRecord,
} from './fault-proxy.js';
