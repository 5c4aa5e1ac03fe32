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
    if (r.tier !== null) {
      routed++;
      if (r.tier === weakTier) weak++;
    }
    if (r.status === 'upstream_error' || (r.status === 'rejected' && (r.http_status ?? 0) >= 500)) errors++;
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
    '',
  ];
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
