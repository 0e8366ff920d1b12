/**
 * A small metrics registry: counters, gauges and histograms with labels, rendered in the
 * Prometheus text exposition format (version 0.0.4). Services get a registry injected and
 * update it; collectors refresh gauges that mirror live state just before each rendering.
 *
 * @module
 */
import { BadParameterError, messageOf } from "../errors/mod.ts";

/** Label values of one series, by label name. */
export type Labels = Readonly<Record<string, string>>;

/** Common options of every metric. */
export interface MetricOptions {
  /** Metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`. */
  name: string;
  /** One line saying what it measures (the `# HELP` line). */
  help: string;
  /** Names of its labels; every update gives exactly these. @default {[]} */
  labelNames?: readonly string[];
}

/** Options of {@linkcode MetricsRegistry.histogram}. */
export interface HistogramOptions extends MetricOptions {
  /** Upper bounds of the buckets, ascending (`+Inf` is implied). @default {DEFAULT_BUCKETS} */
  buckets?: readonly number[];
}

/** Latency buckets in seconds, from 1 ms to 10 s. */
export const DEFAULT_BUCKETS: readonly number[] = Object.freeze([
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
]);

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

type MetricType = "counter" | "gauge" | "histogram";

/** Formats a sample value as the text format writes it. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

function escapeHelp(s: string): string {
  return s.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function escapeLabelValue(s: string): string {
  return s.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

function formatLabels(pairs: ReadonlyArray<readonly [string, string]>): string {
  if (pairs.length === 0) return "";
  return `{${pairs.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(",")}}`;
}

/** What every metric kind shares: name, help, label names and the series by label values. */
abstract class Metric<S> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  abstract readonly type: MetricType;
  protected readonly series: Map<string, { values: string[]; state: S }> = new Map();

  constructor(o: MetricOptions, reserved: readonly string[] = []) {
    if (!METRIC_NAME.test(o.name)) {
      throw new BadParameterError(
        `Cannot register metric "${o.name}": a name is letters, digits, _ and : and does not start with a digit`,
      );
    }
    const labelNames = [...(o.labelNames ?? [])];
    for (const l of labelNames) {
      if (!LABEL_NAME.test(l) || l.startsWith("__") || reserved.includes(l)) {
        throw new BadParameterError(
          `Cannot register metric "${o.name}": label name "${l}" is not allowed (letters, digits and _, not starting with __${
            reserved.length > 0 ? `, not ${reserved.join(", ")}` : ""
          })`,
        );
      }
    }
    if (new Set(labelNames).size !== labelNames.length) {
      throw new BadParameterError(`Cannot register metric "${o.name}": a label name repeats`);
    }
    this.name = o.name;
    this.help = o.help;
    this.labelNames = labelNames;
  }

  protected abstract initial(): S;

  /** The state of the series with `labels`, created on first use. */
  protected state(labels: Labels = {}): S {
    const values = this.labelNames.map((n) => {
      const v = labels[n];
      if (v === undefined) {
        throw new BadParameterError(
          `Cannot update metric ${this.name}: label "${n}" is missing (labels: ${
            this.labelNames.join(", ")
          })`,
        );
      }
      return v;
    });
    for (const k of Object.keys(labels)) {
      if (!this.labelNames.includes(k)) {
        throw new BadParameterError(
          `Cannot update metric ${this.name}: it has no label "${k}" (labels: ${
            this.labelNames.join(", ") || "none"
          })`,
        );
      }
    }
    const key = JSON.stringify(values);
    let s = this.series.get(key);
    if (s === undefined) {
      s = { values, state: this.initial() };
      this.series.set(key, s);
    }
    return s.state;
  }

  /** Forgets every series (a collector that rebuilds a labelled gauge calls this first). */
  reset(): void {
    this.series.clear();
  }

  protected pairs(values: readonly string[]): Array<[string, string]> {
    return this.labelNames.map((n, i) => [n, values[i]!]);
  }

  /** The metric's lines in the text format. */
  render(): string[] {
    const out = [
      `# HELP ${this.name} ${escapeHelp(this.help)}`,
      `# TYPE ${this.name} ${this.type}`,
    ];
    for (const { values, state } of this.series.values()) out.push(...this.lines(values, state));
    return out;
  }

  protected abstract lines(values: readonly string[], state: S): string[];
}

/** A value that only goes up (requests served, logins). */
export class Counter extends Metric<{ v: number }> {
  readonly type = "counter";

  protected initial(): { v: number } {
    return { v: 0 };
  }

  /** Adds `by` (≥ 0) to the series with `labels`. */
  inc(labels?: Labels, by = 1): void {
    if (!(by >= 0)) {
      throw new BadParameterError(
        `Cannot increase counter ${this.name} by ${by}: a counter only goes up`,
      );
    }
    this.state(labels).v += by;
  }

  /** The current value of the series with `labels` (0 when never updated). */
  get(labels?: Labels): number {
    return this.state(labels).v;
  }

  protected lines(values: readonly string[], s: { v: number }): string[] {
    return [`${this.name}${formatLabels(this.pairs(values))} ${formatValue(s.v)}`];
  }
}

/** A value that goes up and down (open connections, state). */
export class Gauge extends Metric<{ v: number }> {
  readonly type = "gauge";

  protected initial(): { v: number } {
    return { v: 0 };
  }

  set(value: number, labels?: Labels): void {
    this.state(labels).v = value;
  }

  inc(labels?: Labels, by = 1): void {
    this.state(labels).v += by;
  }

  dec(labels?: Labels, by = 1): void {
    this.state(labels).v -= by;
  }

  get(labels?: Labels): number {
    return this.state(labels).v;
  }

  protected lines(values: readonly string[], s: { v: number }): string[] {
    return [`${this.name}${formatLabels(this.pairs(values))} ${formatValue(s.v)}`];
  }
}

interface HistogramState {
  counts: number[];
  sum: number;
  count: number;
}

/** Observations counted in buckets (latencies). */
export class Histogram extends Metric<HistogramState> {
  readonly type = "histogram";
  readonly buckets: readonly number[];

  constructor(o: HistogramOptions) {
    super(o, ["le"]);
    const b = [...(o.buckets ?? DEFAULT_BUCKETS)];
    if (b.length === 0 || b.some((x, i) => !Number.isFinite(x) || (i > 0 && x <= b[i - 1]!))) {
      throw new BadParameterError(
        `Cannot register histogram ${o.name}: buckets must be finite and strictly ascending, received [${
          b.join(", ")
        }]`,
      );
    }
    this.buckets = b;
  }

  protected initial(): HistogramState {
    return { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
  }

  /** Records one observation. */
  observe(value: number, labels?: Labels): void {
    const s = this.state(labels);
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  /** Observations and their sum of the series with `labels`. */
  get(labels?: Labels): { count: number; sum: number } {
    const s = this.state(labels);
    return { count: s.count, sum: s.sum };
  }

  protected lines(values: readonly string[], s: HistogramState): string[] {
    const base = this.pairs(values);
    const out = this.buckets.map((le, i) =>
      `${this.name}_bucket${formatLabels([...base, ["le", formatValue(le)]])} ${s.counts[i]}`
    );
    out.push(`${this.name}_bucket${formatLabels([...base, ["le", "+Inf"]])} ${s.count}`);
    out.push(`${this.name}_sum${formatLabels(base)} ${formatValue(s.sum)}`);
    out.push(`${this.name}_count${formatLabels(base)} ${s.count}`);
    return out;
  }
}

/** Refreshes metrics that mirror live state; runs before each rendering. */
export type Collector = () => void | Promise<void>;

/** Called when a collector fails (the rendering goes on with the values it had). */
export type CollectorErrorHandler = (err: unknown) => void;

/** Options of {@linkcode MetricsRegistry}. */
export interface MetricsRegistryOptions {
  /** Told about a failing collector. @default {ignore it} */
  onCollectorError?: CollectorErrorHandler;
}

/** The metrics of one process; see the module doc. */
export class MetricsRegistry {
  readonly #metrics = new Map<string, Metric<unknown>>();
  readonly #collectors = new Set<Collector>();
  readonly #onError: CollectorErrorHandler;

  constructor(o: MetricsRegistryOptions = {}) {
    this.#onError = o.onCollectorError ?? (() => {});
  }

  /** Registers a counter, or returns the one registered under that name with the same shape. */
  counter(o: MetricOptions): Counter {
    return this.#register(o, "counter", () => new Counter(o));
  }

  /** Registers a gauge, or returns the one registered under that name with the same shape. */
  gauge(o: MetricOptions): Gauge {
    return this.#register(o, "gauge", () => new Gauge(o));
  }

  /** Registers a histogram, or returns the one registered under that name with the same shape. */
  histogram(o: HistogramOptions): Histogram {
    return this.#register(o, "histogram", () => new Histogram(o));
  }

  /** Adds a collector; returns its removal. */
  addCollector(collect: Collector): () => void {
    this.#collectors.add(collect);
    return () => this.#collectors.delete(collect);
  }

  /** Runs the collectors, then renders every metric in the text format (0.0.4). */
  async render(): Promise<string> {
    for (const c of [...this.#collectors]) {
      try {
        await c();
      } catch (err) {
        this.#onError(err);
      }
    }
    const lines: string[] = [];
    for (const m of this.#metrics.values()) lines.push(...m.render());
    return lines.length === 0 ? "" : lines.join("\n") + "\n";
  }

  #register<M extends Metric<unknown>>(o: MetricOptions, type: MetricType, make: () => M): M {
    const have = this.#metrics.get(o.name);
    if (have !== undefined) {
      const same = have.type === type &&
        JSON.stringify(have.labelNames) === JSON.stringify(o.labelNames ?? []);
      if (!same) {
        throw new BadParameterError(
          `Cannot register metric ${o.name} as a ${type} with labels [${
            (o.labelNames ?? []).join(", ")
          }]: it is already a ${have.type} with labels [${have.labelNames.join(", ")}]`,
        );
      }
      return have as M;
    }
    let m: M;
    try {
      m = make();
    } catch (err) {
      if (err instanceof BadParameterError) throw err;
      throw new BadParameterError(`Cannot register metric ${o.name}: ${messageOf(err)}`, {
        cause: err,
      });
    }
    this.#metrics.set(o.name, m as Metric<unknown>);
    return m;
  }
}
