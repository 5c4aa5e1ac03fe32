// Health of the canary backend from Prometheus: its 5xx share, its 4xx share beside the stable backend's, and its
// p99 upstream time over a window, from the kgateway proxy's Envoy cluster stats (the same series the
// PrometheusRule alerts use).

export interface Health {
  /** null: no traffic in the window, so nothing to judge by. */
  errorRate: number | null;
  p99Ms: number | null;
  /** The canary's 4xx share, and the stable backend's over the same window (null: no traffic on it). */
  clientErrorRate: number | null;
  stableClientErrorRate: number | null;
}

export interface Thresholds {
  maxErrorRate: number;
  maxP99Ms: number;
  /** How far the canary's 4xx share may be above the stable's (0.05: five points). */
  maxClientErrorExcess: number;
}

/** A backend Service, as kgateway names its Envoy cluster: kube_<namespace>_<name>_<port>. */
export interface Backend {
  namespace: string;
  name: string;
}

export interface Prometheus {
  /** The canary's health; the stable backend is read for its 4xx share only, the baseline the canary's is held to. */
  health(canary: Backend, stable: Backend, window: string): Promise<Health>;
}

/** `timeoutMs`: how long one query may take, the answer's body included. */
export function prometheus(baseUrl: string, { timeoutMs = 10_000 }: { timeoutMs?: number } = {}): Prometheus {
  const base = baseUrl.replace(/\/$/, '');
  const query = async (q: string): Promise<number | null> => {
    const url = `${base}/api/v1/query?${new URLSearchParams({ query: q })}`;
    let res: Response;
    let body: PromAnswer | undefined;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      const text = await res.text();
      try {
        body = JSON.parse(text) as PromAnswer;
      } catch {
        body = undefined;
      }
    } catch (err) {
      // fetch says only "fetch failed"; what went wrong (ECONNREFUSED, ENOTFOUND) is its cause.
      const e = err as Error & { cause?: Error };
      const why = e.name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : (e.cause?.message ?? e.message);
      throw new Error(`prometheus: ${base} cannot be queried: ${why}`);
    }
    // Prometheus says why it refused a query in the body's `error`, with 400 or 422 (or 200 behind some proxies).
    const refused = body?.status === 'error' ? `: ${body.errorType ?? 'error'}: ${body.error ?? ''}` : '';
    if (!res.ok) throw new Error(`prometheus: HTTP ${res.status}${refused} for ${q}`);
    if (body === undefined) throw new Error(`prometheus: the answer from ${base} is not JSON (is it Prometheus' address?) for ${q}`);
    if (body.status !== 'success') throw new Error(`prometheus: query failed${refused} for ${q}`);
    const v = body.data?.result?.[0]?.value?.[1];
    // NaN (a share of 0 requests, a quantile of empty buckets) is no data, as an empty result is.
    const n = v === undefined ? NaN : Number(v);
    return Number.isFinite(n) ? n : null;
  };
  return {
    async health(canary, stable, window) {
      const q = healthQueries(canary, window);
      return {
        errorRate: await query(q.errorRate),
        p99Ms: await query(q.p99Ms),
        clientErrorRate: await query(q.clientErrorRate),
        stableClientErrorRate: await query(healthQueries(stable, window).clientErrorRate),
      };
    },
  };
}

interface PromAnswer {
  status?: string;
  errorType?: string;
  error?: string;
  data?: { result?: Array<{ value?: [number, string] }> };
}

/**
 * The PromQL queries a backend is judged by; each gives no sample when it had no traffic in the window.
 * test/unit/canary-promql.test.ts evaluates them with Prometheus' own engine (promtool).
 */
export function healthQueries(backend: Backend, window: string): { errorRate: string; clientErrorRate: string; p99Ms: string } {
  // kgateway names a Service's cluster kube_<namespace>_<service>_<port>. Matched whole: llm-strong must not also
  // match llm-strong-canary, and the same Service name in another namespace (a staging copy of the stack beside
  // production, one Prometheus for both) is another canary, whose errors must not roll this one back or hide its own.
  for (const part of [backend.namespace, backend.name]) {
    // Kubernetes names are DNS labels, so nothing in them needs escaping in the regex or the PromQL string.
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(part)) throw new Error(`not a Kubernetes namespace or Service name: "${part}"`);
  }
  const sel = `envoy_cluster_name=~"kube_${backend.namespace}_${backend.name}_[0-9]+"`;
  const all = `sum(rate(envoy_cluster_upstream_rq_xx{${sel}}[${window}]))`;
  // Envoy creates a response-class counter on the first response of that class, so a canary that never
  // answered a 5xx has no 5xx series at all: the share alone was then no sample, read as "no traffic data",
  // and promote rolled back every canary that had never failed. No series is 0; no traffic still gives none
  // (the denominator has no sample, or is 0 and the share NaN).
  const share = (codeClass: string) => `(sum(rate(envoy_cluster_upstream_rq_xx{envoy_response_code_class="${codeClass}",${sel}}[${window}])) or vector(0)) / ${all}`;
  return {
    errorRate: share('5'),
    clientErrorRate: share('4'),
    p99Ms: `histogram_quantile(0.99, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket{${sel}}[${window}])))`,
  };
}

/**
 * Evidence against the canary: a measure over its threshold, or undefined. A measure with no data is evidence of
 * nothing. Each is judged on its own: Envoy counts a request that was reset, refused or timed out as a 5xx but
 * records an upstream time only for a response that completed, so a canary that answers nothing has a 5xx share of
 * 100% and no p99 at all. Judged together, that read as "no traffic data": `check` left it serving and `promote`
 * took it from 10% to 50% before judging it.
 */
export function overThreshold(h: Health, t: Thresholds): string | undefined {
  const pct = (share: number) => `${(share * 100).toFixed(2)}%`;
  if (h.errorRate !== null && h.errorRate > t.maxErrorRate) return `5xx rate ${pct(h.errorRate)} > ${pct(t.maxErrorRate)}`;
  // 4xx are held to the stable's, which gets the same clients' requests: a canary that refuses what the stable
  // serves (a model name it does not serve, a shorter context, a stricter schema) answers 404s and 400s, which
  // Envoy does not count as 5xx. With no stable traffic (the canary at 100%) there is nothing to hold them to.
  if (h.clientErrorRate !== null && h.stableClientErrorRate !== null && h.clientErrorRate - h.stableClientErrorRate > t.maxClientErrorExcess) {
    return `4xx rate ${pct(h.clientErrorRate)}, ${pct(h.clientErrorRate - h.stableClientErrorRate)} over the stable's ${pct(h.stableClientErrorRate)} (> ${pct(t.maxClientErrorExcess)})`;
  }
  if (h.p99Ms !== null && h.p99Ms > t.maxP99Ms) return `p99 ${Math.round(h.p99Ms)} ms > ${t.maxP99Ms} ms`;
  return undefined;
}

/** What the window has no data for, or undefined when both measures have some. */
export function missingData(h: Health): string | undefined {
  if (h.errorRate === null && h.p99Ms === null) return 'no traffic data for the canary in the window';
  if (h.p99Ms === null) return 'no latency data for the canary in the window (none of its requests completed)';
  if (h.errorRate === null) return 'no 5xx share for the canary in the window';
  return undefined;
}

/** Why the health is not good enough to go on, or undefined when it is: over a threshold, or not proven by data. */
export function unhealthy(h: Health, t: Thresholds): string | undefined {
  return overThreshold(h, t) ?? missingData(h);
}
