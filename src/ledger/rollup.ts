// `tiergate ledger rollup`: a day's rows summed per tenant × feature, plus the gateway-wide figures finance and
// the classifier loop watch (weak-tier share, cost per 1,000 requests, error rate, p95 latency). Rows are
// deduplicated on request_id, the idempotency key: the last row for an id counts.
import type { LedgerRow } from './row.js';
import { roundUsd } from '../usage/price-table.js';

export interface GroupTotals {
  tenant_id: string;
  feature_id: string | null;
  requests: number;
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  cost_usd: number;
  saved_usd: number;
  cache_hits: number;
  /** Rows with usage but no price (cost_usd null): their cost is missing from cost_usd. */
  unpriced: number;
}

/** The shadow classifier against the version that decided, over rows that carry a shadow decision. */
export interface ShadowSummary {
  rows: number;
  agreement_rate: number;
  /** "tier->shadow_tier" → rows: each direction of disagreement. */
  disagreements: Record<string, number>;
  /** The weak-tier share had the shadow version decided every shadowed row (other routed rows as they were). */
  weak_tier_share: number | null;
}

/** Per classifier_version: how the active version and a canary candidate compare on live traffic. */
export interface VersionTotals {
  classifier_version: string;
  requests: number;
  weak_tier_share: number | null;
  error_rate: number | null;
  cost_per_1000_requests: number | null;
}

export interface Rollup {
  day: string | null;
  requests: number;
  /** Rows dropped because a later row had the same request_id. */
  duplicates: number;
  /** Share of tier-routed requests that went to the weak tier. */
  weak_tier_share: number | null;
  cost_usd: number;
  cost_per_1000_requests: number | null;
  /** Upstream errors and tiergate's own 5xx, over all requests. */
  error_rate: number | null;
  rejected: number;
  cancelled: number;
  p95_latency_ms: number | null;
  shadow: ShadowSummary | null;
  /** Classifier-decided rows only (not alias or path routes). */
  versions: VersionTotals[];
  groups: GroupTotals[];
}

export async function rollup(rows: AsyncIterable<LedgerRow>, opts: { day?: string; weakTier?: string } = {}): Promise<Rollup> {
  const weakTier = opts.weakTier ?? 'weak';
  const byRequest = new Map<string, LedgerRow>();
  let seen = 0;
  for await (const row of rows) {
    if (opts.day && !row.timestamp.startsWith(opts.day)) continue;
    seen++;
    // Re-inserted so that Map order follows the row that counts.
    byRequest.delete(row.request_id);
    byRequest.set(row.request_id, row);
  }
  const groups = new Map<string, GroupTotals>();
  let routed = 0;
  let weak = 0;
  let errors = 0;
  let rejected = 0;
  let cancelled = 0;
  let cost = 0;
  const latencies: number[] = [];
  let shadowed = 0;
  let agreed = 0;
  let weakUnderShadow = 0;
  const disagreements: Record<string, number> = {};
  const versions = new Map<string, { requests: number; weak: number; errors: number; cost: number }>();
  for (const r of byRequest.values()) {
    const key = `${r.tenant_id}\u0000${r.feature_id ?? ''}`;
    let g = groups.get(key);
    if (!g) {
      g = { tenant_id: r.tenant_id, feature_id: r.feature_id, requests: 0, input_tokens: 0, output_tokens: 0, total_tokens: 0, cost_usd: 0, saved_usd: 0, cache_hits: 0, unpriced: 0 };
      groups.set(key, g);
    }
    g.requests++;
    g.input_tokens += r.usage.input_tokens;
    g.output_tokens += r.usage.output_tokens;
    g.total_tokens += r.usage.total_tokens;
    if (r.cost_usd) g.cost_usd += r.cost_usd.total;
    else if (r.usage.total_tokens > 0) g.unpriced++;
    g.saved_usd += r.saved_usd ?? 0;
    if (r.cache_hit) g.cache_hits++;
    cost += r.cost_usd?.total ?? 0;
    const isError = r.status === 'upstream_error' || (r.status === 'rejected' && (r.http_status ?? 0) >= 500);
    if (r.tier !== null) {
      routed++;
      if (r.tier === weakTier) weak++;
      if ((r.shadow_tier ?? r.tier) === weakTier) weakUnderShadow++;
      if (r.shadow_tier !== null) {
        shadowed++;
        if (r.shadow_tier === r.tier) agreed++;
        else {
          const k = `${r.tier}->${r.shadow_tier}`;
          disagreements[k] = (disagreements[k] ?? 0) + 1;
        }
      }
      if (r.classifier_rule !== null && r.classifier_version !== null) {
        let v = versions.get(r.classifier_version);
        if (!v) versions.set(r.classifier_version, (v = { requests: 0, weak: 0, errors: 0, cost: 0 }));
        v.requests++;
        if (r.tier === weakTier) v.weak++;
        if (isError) v.errors++;
        v.cost += r.cost_usd?.total ?? 0;
      }
    }
    if (isError) errors++;
    if (r.status === 'rejected') rejected++;
    if (r.status === 'cancelled') cancelled++;
    latencies.push(r.latency_ms.total);
  }
  const n = byRequest.size;
  for (const g of groups.values()) {
    g.cost_usd = roundUsd(g.cost_usd);
    g.saved_usd = roundUsd(g.saved_usd);
  }
  return {
    day: opts.day ?? null,
    requests: n,
    duplicates: seen - n,
    weak_tier_share: routed > 0 ? weak / routed : null,
    cost_usd: roundUsd(cost),
    cost_per_1000_requests: n > 0 ? roundUsd((cost / n) * 1000) : null,
    error_rate: n > 0 ? errors / n : null,
    rejected,
    cancelled,
    p95_latency_ms: percentile(latencies, 0.95),
    shadow: shadowed > 0 ? { rows: shadowed, agreement_rate: agreed / shadowed, disagreements, weak_tier_share: weakUnderShadow / routed } : null,
    versions: [...versions.entries()]
      .map(([classifier_version, v]) => ({
        classifier_version,
        requests: v.requests,
        weak_tier_share: v.weak / v.requests,
        error_rate: v.errors / v.requests,
        cost_per_1000_requests: roundUsd((v.cost / v.requests) * 1000),
      }))
      .sort((a, b) => b.requests - a.requests || a.classifier_version.localeCompare(b.classifier_version)),
    groups: [...groups.values()].sort((a, b) => b.cost_usd - a.cost_usd || a.tenant_id.localeCompare(b.tenant_id)),
  };
}

/** Nearest-rank percentile: the smallest value with at least p of the values at or below it. */
export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] as number;
}

export function formatRollup(r: Rollup): string {
  const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(1)}%`);
  const usd = (x: number | null) => (x === null ? '-' : `$${x.toFixed(6)}`);
  const lines = [
    `ledger rollup${r.day ? ` for ${r.day}` : ''}`,
    `  requests              ${r.requests}${r.duplicates ? ` (${r.duplicates} duplicate rows ignored)` : ''}`,
    `  cost                  ${usd(r.cost_usd)}`,
    `  cost / 1,000 requests ${usd(r.cost_per_1000_requests)}`,
    `  weak-tier share       ${pct(r.weak_tier_share)}`,
    `  error rate            ${pct(r.error_rate)}   (rejected by tiergate: ${r.rejected}, cancelled: ${r.cancelled})`,
    `  p95 latency           ${r.p95_latency_ms === null ? '-' : `${r.p95_latency_ms.toFixed(1)} ms`}`,
  ];
  if (r.shadow) {
    const dirs = Object.entries(r.shadow.disagreements).map(([k, n]) => `${k} ${n}`).join(', ');
    lines.push(
      `  shadow classifier     agreement ${pct(r.shadow.agreement_rate)} over ${r.shadow.rows} rows${dirs ? ` (disagree: ${dirs})` : ''}`,
      `                        weak-tier share under the shadow ${pct(r.shadow.weak_tier_share)}`,
    );
  }
  if (r.versions.length > 1) {
    lines.push('  by classifier version');
    for (const v of r.versions) {
      lines.push(`    ${v.classifier_version.padEnd(12)} ${String(v.requests).padStart(8)} requests   weak ${pct(v.weak_tier_share)}   errors ${pct(v.error_rate)}   cost/1,000 ${usd(v.cost_per_1000_requests)}`);
    }
  }
  lines.push('');
  const header = ['tenant', 'feature', 'requests', 'input tok', 'output tok', 'cost USD', 'saved USD', 'unpriced'];
  const table = r.groups.map((g) => [
    g.tenant_id,
    g.feature_id ?? '-',
    String(g.requests),
    String(g.input_tokens),
    String(g.output_tokens),
    g.cost_usd.toFixed(6),
    g.saved_usd.toFixed(6),
    String(g.unpriced),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => (row[i] as string).length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  lines.push(fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...table.map(fmt));
  return `${lines.join('\n')}\n`;
}
