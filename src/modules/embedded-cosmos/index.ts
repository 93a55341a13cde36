export { startEmbeddedCosmos, type EmbeddedCosmos, type EmbeddedCosmosOptions, type PartitionSplit } from './embedded-cosmos.js';
export type { PartitionKeyRange } from './partition-key-ranges.js';
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
