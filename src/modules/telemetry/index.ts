export { otel, telemetryReady, type OtelApiModule } from './otel-api.js';
export {
  cosmosTelemetryPlugin,
  currentTraceparent,
  INSTRUMENTATION_SCOPE,
  recordsDetails,
  recordSubscriberLag,
  traceCommand,
  traceStore,
  traceSubscriberPage,
  type StoreCallDetails,
  type StoreOperation,
  type SubscriberPage,
} from './telemetry.js';
