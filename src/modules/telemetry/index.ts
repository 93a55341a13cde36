export {
  cosmosTelemetryPlugin,
  currentTraceparent,
  INSTRUMENTATION_SCOPE,
  recordsDetails,
  recordSubscriberLag,
  telemetryReady,
  traceCommand,
  traceStore,
  traceSubscriberPage,
  type StoreCallDetails,
  type StoreOperation,
  type SubscriberPage,
} from './telemetry.js';
