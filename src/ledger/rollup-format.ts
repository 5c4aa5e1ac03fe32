// How a rollup is shown: a readable report, or the per-tenant × feature table as CSV for a spreadsheet (the
// other sections are in the report and in `--json`).
import type { GroupTotals, Rollup } from './rollup-report.js';

export function formatRollup(r: Rollup): string {
  const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(1)}%`);
  const usd = (x: number | null) => (x === null ? '-' : `$${x.toFixed(6)}`);
  const lines = [
    `ledger rollup${r.day ? ` for ${r.day}` : r.from ? ` for ${r.from} to ${r.to}` : ''}`,
    `  requests              ${r.requests}${r.duplicates ? ` (${r.duplicates} duplicate rows ignored)` : ''}`,
    ...(r.invalid_skipped ? [`  INCOMPLETE            ${r.invalid_skipped} lines that are not ledger rows were skipped (listed on stderr)`] : []),
    ...(r.trimmed_before ? [`  INCOMPLETE            the Redis stream has lost the entries added before ${r.trimmed_before} (trimmed: maxLen)`] : []),
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
  if (r.models.length > 0) {
    lines.push('  by tier and model');
    const tierWidth = Math.max(...r.models.map((m) => (m.tier ?? '-').length));
    const modelWidth = Math.max(...r.models.map((m) => m.model.length));
    for (const m of r.models) {
      const cut = m.cut_short ? `   cut short ${m.cut_short} (${pct(m.cut_short / m.requests)})` : '';
      const saved = m.saved_usd ? `   saved ${usd(m.saved_usd)}` : '';
      const unpriced = m.unpriced ? `   unpriced ${m.unpriced}` : '';
      lines.push(`    ${(m.tier ?? '-').padEnd(tierWidth)}  ${m.model.padEnd(modelWidth)} ${String(m.requests).padStart(8)} requests   cost ${usd(m.cost_usd)}${saved}${cut}${unpriced}`);
    }
  }
  if (r.service_tiers.length > 0) {
    lines.push('  by service tier');
    for (const t of r.service_tiers) {
      lines.push(`    ${t.service_tier.padEnd(12)} ${String(t.requests).padStart(8)} requests   cost ${usd(t.cost_usd)}${t.unpriced ? `   unpriced ${t.unpriced}` : ''}`);
    }
  }
  if (r.tool_calls.length > 0) {
    lines.push(`  hosted tool calls      cost ${usd(r.tool_calls_cost_usd)}`);
    for (const t of r.tool_calls) lines.push(`    ${t.type.padEnd(20)} ${String(t.calls).padStart(8)} calls in ${t.requests} requests`);
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

const CSV_COLUMNS: ReadonlyArray<keyof GroupTotals> = ['tenant_id', 'feature_id', 'requests', 'input_tokens', 'output_tokens', 'total_tokens', 'cost_usd', 'saved_usd', 'cache_hits', 'unpriced'];

/**
 * The per-tenant × feature table as CSV (RFC 4180: CRLF line ends, a field quoted when it holds a comma, a
 * quote or a line break), with the period in its first two columns so that months can be appended to one sheet.
 * A field starting with =, +, - or @ gets a leading quote mark, so that a spreadsheet never runs a tenant or
 * feature name (a client's header) as a formula.
 */
export function formatRollupCsv(r: Rollup): string {
  const field = (v: string | number | null): string => {
    let s = v === null ? '' : String(v);
    if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const lines = [['from', 'to', ...CSV_COLUMNS].join(',')];
  for (const g of r.groups) lines.push([r.from, r.to, ...CSV_COLUMNS.map((c) => (c === 'cost_usd' || c === 'saved_usd' ? g[c].toFixed(6) : g[c]))].map(field).join(','));
  return `${lines.join('\r\n')}\r\n`;
}
