/**
 * Process metrics: a {@linkcode MetricsRegistry} of counters, gauges and histograms with
 * labels, rendered in the Prometheus text format. The registry is injected into the services
 * that update it (never a global); the diagnostics endpoint (lib/service) serves its rendering
 * at `/metrics`.
 *
 * ```ts
 * import { MetricsRegistry } from "./mod.ts";
 * const metrics = new MetricsRegistry();
 * metrics.counter({ name: "user_login_total", help: "Logins" }).inc();
 * const text = await metrics.render(); // "# HELP user_login_total Logins\n…"
 * ```
 *
 * @module
 */
export {
  type Collector,
  type CollectorErrorHandler,
  Counter,
  DEFAULT_BUCKETS,
  formatValue,
  Gauge,
  Histogram,
  type HistogramOptions,
  type Labels,
  type MetricOptions,
  MetricsRegistry,
  type MetricsRegistryOptions,
} from "./registry.ts";
