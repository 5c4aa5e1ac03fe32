// `tiergate ledger rollup`: a period's rows (a day, a month, any range of days) summed per tenant × feature,
// plus the gateway-wide figures finance and the classifier loop watch (weak-tier share, cost per 1,000 requests,
// error rate, p95 latency, cost by tier and model, cost by service tier, hosted tool calls). A row delivered twice (the sinks are at
// least once) is counted once: rows are told apart by event_id, which a row keeps however often it is sent. Not
// by request_id: that is Envoy's x-request-id, which Envoy keeps as a client sent it unless it takes the request
// for an edge request, so a client reusing one id would have all but one of its requests dropped, and could drop
// another tenant's.
import type { LedgerRow } from './row.js';
import { roundUsd } from '../usage/price-table.js';
import type { GroupTotals, ModelTotals, Rollup, ServiceTierTotals, ToolCallTotals } from './rollup-report.js';

/** What the rollup needs of one row, its strings shared: a fifth of a parsed row's memory (~1.2 KB). */
interface Counted {
  tenant: string;
  feature: string | null;
  tier: string | null;
  model: string | null;
  serviceTier: string | null;
  shadowTier: string | null;
  /** The classifier version, for rows a classifier rule decided; null for alias and path routes. */
  version: string | null;
  status: LedgerRow['status'];
  httpStatus: number;
  input: number;
  output: number;
  total: number;
  cost: number | null;
  saved: number;
  cacheHit: boolean;
  latency: number;
  /** Hosted tool calls by type and their priced cost; null for the many rows without any. */
  tools: { calls: Readonly<Record<string, number>>; cost: number } | null;
  /** A token cap ended the answer. */
  cutShort: boolean;
}

/** The finish reasons that say a token cap ended the answer: Chat's and Completions', the Responses API's. */
const CUT_SHORT: ReadonlySet<unknown> = new Set(['length', 'max_output_tokens']);

/**
 * A row's hosted tool calls, read as a loose field (rows before 2026-12-03 have none; a hand-edited one may hold
 * anything): only counts that are whole non-negative numbers are taken.
 */
function toolsOf(r: LedgerRow, strings: Strings): Counted['tools'] {
  const calls = (r as { tool_calls?: unknown }).tool_calls;
  if (calls === null || typeof calls !== 'object' || Array.isArray(calls)) return null;
  const kept: Record<string, number> = {};
  let found = false;
  for (const [type, n] of Object.entries(calls as Record<string, unknown>)) {
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0) continue;
    kept[strings.of(type)] = n;
    found = true;
  }
  const cost = (r.cost_usd as { tool_calls?: unknown } | null)?.tool_calls;
  return found ? { calls: kept, cost: typeof cost === 'number' && Number.isFinite(cost) && cost > 0 ? cost : 0 } : null;
}

/**
 * A row without a price: its cost is missing from every sum it is in. Whatever it counted: usage nobody measured
 * (a plain-text transcript) has no tokens to show, and is the spend a sum most misses.
 */
const unpriced = (r: Counted): boolean => r.cost === null;

/** One string per distinct value: JSON.parse makes a new one for every row. */
class Strings {
  private readonly seen = new Map<string, string>();
  of(s: string): string;
  of(s: string | null): string | null;
  of(s: string | null): string | null {
    if (s === null) return null;
    const known = this.seen.get(s);
    if (known !== undefined) return known;
    this.seen.set(s, s);
    return s;
  }
}

/**
 * The rows of one day (or every row, `day` undefined), each event_id counted once. A row's timestamp is when its
 * request reached tiergate, so a replayed row always falls on the same day.
 */
async function dedupDay(rows: AsyncIterable<LedgerRow>, day: string | undefined, strings: Strings): Promise<{ rows: Map<string, Counted>; seen: number }> {
  const byEvent = new Map<string, Counted>();
  let seen = 0;
  for await (const r of rows) {
    if (day && !r.timestamp.startsWith(day)) continue;
    seen++;
    // A copy of a row already counted: the same row, sent again.
    if (byEvent.has(r.event_id)) continue;
    byEvent.set(r.event_id, {
      tenant: strings.of(r.tenant_id),
      // An empty feature header named no feature: with the rows that had none, not a group of its own.
      feature: r.feature_id === '' ? null : strings.of(r.feature_id),
      tier: strings.of(r.tier),
      model: strings.of(r.model_resolved),
      serviceTier: strings.of(r.service_tier ?? null),
      shadowTier: strings.of(r.shadow_tier),
      version: r.classifier_rule !== null && r.classifier_version !== null ? strings.of(r.classifier_version) : null,
      status: r.status,
      httpStatus: r.http_status ?? 0,
      input: r.usage.input_tokens,
      output: r.usage.output_tokens,
      total: r.usage.total_tokens,
      cost: r.cost_usd ? r.cost_usd.total : null,
      saved: r.saved_usd ?? 0,
      cacheHit: r.cache_hit,
      latency: r.latency_ms.total,
      tools: toolsOf(r, strings),
      // Read loosely: rows before 2026-12-07 have no finish_reason.
      cutShort: CUT_SHORT.has((r as { finish_reason?: unknown }).finish_reason),
    });
  }
  return { rows: byEvent, seen };
}

/** The figures summed over days, each day's rows added once deduplicated. */
class Totals {
  readonly groups = new Map<string, GroupTotals>();
  requests = 0;
  seen = 0;
  routed = 0;
  weak = 0;
  errors = 0;
  rejected = 0;
  cancelled = 0;
  cost = 0;
  latencies = new Float64Array(1024);
  shadowed = 0;
  agreed = 0;
  weakUnderShadow = 0;
  readonly disagreements: Record<string, number> = {};
  readonly versions = new Map<string, { requests: number; weak: number; errors: number; cost: number }>();
  readonly serviceTiers = new Map<string, ServiceTierTotals>();
  readonly models = new Map<string, ModelTotals>();
  readonly toolCalls = new Map<string, ToolCallTotals>();
  toolCost = 0;

  constructor(private readonly weakTier: string) {}

  add(day: { rows: Map<string, Counted>; seen: number }): void {
    this.seen += day.seen;
    for (const r of day.rows.values()) this.count(r);
  }

  private count(r: Counted): void {
    const key = `${r.tenant}\u0000${r.feature ?? ''}`;
    let g = this.groups.get(key);
    if (!g) {
      g = { tenant_id: r.tenant, feature_id: r.feature, requests: 0, input_tokens: 0, output_tokens: 0, total_tokens: 0, cost_usd: 0, saved_usd: 0, cache_hits: 0, unpriced: 0 };
      this.groups.set(key, g);
    }
    g.requests++;
    g.input_tokens += r.input;
    g.output_tokens += r.output;
    g.total_tokens += r.total;
    g.cost_usd += r.cost ?? 0;
    if (unpriced(r)) g.unpriced++;
    g.saved_usd += r.saved;
    if (r.cacheHit) g.cache_hits++;
    if (r.serviceTier !== null) this.serviceTierRow(r.serviceTier, r);
    if (r.model !== null) this.modelRow(r.model, r);
    if (r.tools) this.toolRow(r.tools);
    this.cost += r.cost ?? 0;
    const isError = r.status === 'upstream_error' || (r.status === 'rejected' && r.httpStatus >= 500);
    if (r.tier !== null) this.routedRow(r, isError);
    if (isError) this.errors++;
    if (r.status === 'rejected') this.rejected++;
    if (r.status === 'cancelled') this.cancelled++;
    if (this.requests === this.latencies.length) {
      const grown = new Float64Array(this.latencies.length * 2);
      grown.set(this.latencies);
      this.latencies = grown;
    }
    this.latencies[this.requests++] = r.latency;
  }

  private serviceTierRow(name: string, r: Counted): void {
    let t = this.serviceTiers.get(name);
    if (!t) this.serviceTiers.set(name, (t = { service_tier: name, requests: 0, cost_usd: 0, unpriced: 0 }));
    t.requests++;
    t.cost_usd += r.cost ?? 0;
    if (unpriced(r)) t.unpriced++;
  }

  private modelRow(model: string, r: Counted): void {
    const key = `${r.tier ?? ''}\u0000${model}`;
    let m = this.models.get(key);
    if (!m) this.models.set(key, (m = { tier: r.tier, model, requests: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0, saved_usd: 0, unpriced: 0, cut_short: 0 }));
    m.requests++;
    m.input_tokens += r.input;
    m.output_tokens += r.output;
    m.cost_usd += r.cost ?? 0;
    m.saved_usd += r.saved;
    if (unpriced(r)) m.unpriced++;
    if (r.cutShort) m.cut_short++;
  }

  private toolRow(tools: NonNullable<Counted['tools']>): void {
    this.toolCost += tools.cost;
    for (const [type, n] of Object.entries(tools.calls)) {
      let t = this.toolCalls.get(type);
      if (!t) this.toolCalls.set(type, (t = { type, calls: 0, requests: 0 }));
      t.calls += n;
      t.requests++;
    }
  }

  private routedRow(r: Counted, isError: boolean): void {
    this.routed++;
    if (r.tier === this.weakTier) this.weak++;
    if ((r.shadowTier ?? r.tier) === this.weakTier) this.weakUnderShadow++;
    if (r.shadowTier !== null) {
      this.shadowed++;
      if (r.shadowTier === r.tier) this.agreed++;
      else {
        const k = `${r.tier}->${r.shadowTier}`;
        this.disagreements[k] = (this.disagreements[k] ?? 0) + 1;
      }
    }
    if (r.version !== null) {
      let v = this.versions.get(r.version);
      if (!v) this.versions.set(r.version, (v = { requests: 0, weak: 0, errors: 0, cost: 0 }));
      v.requests++;
      if (r.tier === this.weakTier) v.weak++;
      if (isError) v.errors++;
      v.cost += r.cost ?? 0;
    }
  }

  finish(period: Period | undefined, invalidSkipped: number, trimmedBefore: string | null): Rollup {
    const n = this.requests;
    for (const g of this.groups.values()) {
      g.cost_usd = roundUsd(g.cost_usd);
      g.saved_usd = roundUsd(g.saved_usd);
    }
    return {
      day: period && period.from === period.to ? period.from : null,
      from: period?.from ?? null,
      to: period?.to ?? null,
      requests: n,
      duplicates: this.seen - n,
      invalid_skipped: invalidSkipped,
      trimmed_before: trimmedBefore,
      weak_tier_share: this.routed > 0 ? this.weak / this.routed : null,
      cost_usd: roundUsd(this.cost),
      cost_per_1000_requests: n > 0 ? roundUsd((this.cost / n) * 1000) : null,
      error_rate: n > 0 ? this.errors / n : null,
      rejected: this.rejected,
      cancelled: this.cancelled,
      p95_latency_ms: percentile(this.latencies.subarray(0, n), 0.95),
      shadow: this.shadowed > 0 ? { rows: this.shadowed, agreement_rate: this.agreed / this.shadowed, disagreements: this.disagreements, weak_tier_share: this.weakUnderShadow / this.routed } : null,
      versions: [...this.versions.entries()]
        .map(([classifier_version, v]) => ({
          classifier_version,
          requests: v.requests,
          weak_tier_share: v.weak / v.requests,
          error_rate: v.errors / v.requests,
          cost_per_1000_requests: roundUsd((v.cost / v.requests) * 1000),
        }))
        .sort((a, b) => b.requests - a.requests || a.classifier_version.localeCompare(b.classifier_version)),
      service_tiers: [...this.serviceTiers.values()]
        .map((t) => ({ ...t, cost_usd: roundUsd(t.cost_usd) }))
        .sort((a, b) => b.cost_usd - a.cost_usd || a.service_tier.localeCompare(b.service_tier)),
      models: [...this.models.values()]
        .map((m) => ({ ...m, cost_usd: roundUsd(m.cost_usd), saved_usd: roundUsd(m.saved_usd) }))
        .sort((a, b) => b.cost_usd - a.cost_usd || (a.tier ?? '').localeCompare(b.tier ?? '') || a.model.localeCompare(b.model)),
      tool_calls: [...this.toolCalls.values()].sort((a, b) => b.calls - a.calls || a.type.localeCompare(b.type)),
      tool_calls_cost_usd: roundUsd(this.toolCost),
      groups: [...this.groups.values()].sort((a, b) => b.cost_usd - a.cost_usd || a.tenant_id.localeCompare(b.tenant_id)),
    };
  }
}

/** Calendar days in UTC (the ledger's timestamps), both ends included. */
export interface Period {
  from: string;
  to: string;
}

/** Every day of a period, in order. */
export function daysOf(p: Period): string[] {
  const days: string[] = [];
  for (let t = Date.parse(`${p.from}T00:00:00Z`); t <= Date.parse(`${p.to}T00:00:00Z`); t += 86_400_000) days.push(new Date(t).toISOString().slice(0, 10));
  return days;
}

/**
 * A period's rows summed: each day read and deduplicated on its own (`rowsOf(day)`), so memory holds one day's
 * rows at a time (plus a number per request for the p95). Without a period, every row `rowsOf(undefined)` yields.
 */
export async function rollup(
  rowsOf: (day: string | undefined) => AsyncIterable<LedgerRow>,
  opts: {
    period?: Period;
    weakTier?: string;
    /** How many lines the reader skipped as not ledger rows, once it is done. */
    invalidSkipped?: () => number;
    /** The source lost the rows of the period added before this time (a trimmed stream: streamLostBefore()). */
    trimmedBefore?: string | null;
  } = {},
): Promise<Rollup> {
  const totals = new Totals(opts.weakTier ?? 'weak');
  const strings = new Strings();
  for (const day of opts.period ? daysOf(opts.period) : [undefined]) totals.add(await dedupDay(rowsOf(day), day, strings));
  return totals.finish(opts.period, opts.invalidSkipped?.() ?? 0, opts.trimmedBefore ?? null);
}

/** Nearest-rank percentile: the smallest value with at least p of the values at or below it. */
function percentile(values: ArrayLike<number>, p: number): number | null {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] as number;
}
