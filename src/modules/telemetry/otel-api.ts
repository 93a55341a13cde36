import type * as OtelApi from '@opentelemetry/api';

/** The `@opentelemetry/api` module, once loaded; `null` when it is not installed. */
export type OtelApiModule = typeof OtelApi;

let api: OtelApiModule | null | undefined;

// Loaded without a top-level await, so a CommonJS consumer's `require` of the library still works, and
// without a static import, so the library loads where the optional peer is not installed: telemetry is
// off until the import settles (a few event-loop turns after the library is first imported).
const loading: Promise<void> = import('@opentelemetry/api').then(
  (module: unknown) => {
    // Node's ESM loader gives the package's named exports; a bundler may put them on `default` only.
    const named = module as Partial<OtelApiModule> & { default?: OtelApiModule };
    api = typeof named.createNoopMeter === 'function' ? (named as OtelApiModule) : (named.default ?? null);
  },
  () => {
    api = null;
  },
);

/** The OpenTelemetry API when it is installed and loaded, else `undefined` (every instrument is then a no-op). */
export function otel(): OtelApiModule | undefined {
  return api ?? undefined;
}

/** Settles once the import of `@opentelemetry/api` has (see `telemetryReady`). */
export function otelLoaded(): Promise<void> {
  return loading;
}
