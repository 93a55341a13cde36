/* The example service's OpenTelemetry bootstrap: an SDK only when OTEL_EXPORTER_OTLP_ENDPOINT is set. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { context, metrics, propagation, trace } from '@opentelemetry/api';
import { startTelemetry } from '../../example/src/telemetry.js';

afterEach(() => {
  trace.disable();
  metrics.disable();
  context.disable();
  propagation.disable();
});

describe('example telemetry bootstrap', () => {
  it('loads no SDK without OTEL_EXPORTER_OTLP_ENDPOINT: spans do not record', async () => {
    expect(await startTelemetry({})).toBeUndefined();
    const span = trace.getTracer('t').startSpan('x');
    expect(span.isRecording()).toBe(false);
    span.end();
  });

  it('registers tracing and metrics with OTEL_EXPORTER_OTLP_ENDPOINT set, and exports there', async () => {
    // A collector on loopback that takes whatever is posted.
    const posted: string[] = [];
    const collector = createServer((req, res) => {
      posted.push(req.url ?? '');
      req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    const saved = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    // The exporters read the standard variables from the process's environment.
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
    try {
      const shutdown = await startTelemetry(process.env);
      expect(shutdown).toBeInstanceOf(Function);
      const span = trace.getTracer('t').startSpan('x');
      expect(span.isRecording()).toBe(true);
      span.end();
      metrics.getMeter('t').createCounter('c').add(1);
      await shutdown!();
      expect(posted.sort()).toEqual(['/v1/metrics', '/v1/traces']);
    } finally {
      if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved;
      collector.close();
    }
  });
});
