/**
 * OpenTelemetry for the service, imported first by main.ts: when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, traces
 * and metrics (the library's spans, request units, conflicts, retries, lag) are exported over OTLP/HTTP, as
 * the standard `OTEL_*` variables say (`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_HEADERS`, ...); otherwise no
 * SDK is loaded and the library's instrumentation costs nothing.
 */
import { metrics } from '@opentelemetry/api';

/** Starts the SDK when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; resolves with its shutdown (flush), else `undefined`. */
export async function startTelemetry(env: NodeJS.ProcessEnv = process.env): Promise<(() => Promise<void>) | undefined> {
  if (!env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim()) return undefined;
  const [{ BatchSpanProcessor, NodeTracerProvider }, { OTLPTraceExporter }, { MeterProvider, PeriodicExportingMetricReader }, { OTLPMetricExporter }, { resourceFromAttributes }] =
    await Promise.all([
      import('@opentelemetry/sdk-trace-node'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/sdk-metrics'),
      import('@opentelemetry/exporter-metrics-otlp-http'),
      import('@opentelemetry/resources'),
    ]);
  const resource = resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME?.trim() || 'nest-cosmos-eventstore-example' });
  // The exporters read the endpoint, headers and timeouts from the OTEL_EXPORTER_OTLP_* variables themselves.
  const tracerProvider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] });
  // The global tracer provider, an AsyncLocalStorage context manager and the W3C trace-context propagator.
  tracerProvider.register();
  const meterProvider = new MeterProvider({ resource, readers: [new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter() })] });
  metrics.setGlobalMeterProvider(meterProvider);
  return async () => {
    await Promise.allSettled([tracerProvider.shutdown(), meterProvider.shutdown()]);
  };
}

// Before Nest and the library are loaded (main.ts imports this file first): every span of the service is recorded.
const shutdown = await startTelemetry();
// What is still buffered goes out when the event loop empties (Nest closes the server first).
if (shutdown) process.once('beforeExit', () => void shutdown());
