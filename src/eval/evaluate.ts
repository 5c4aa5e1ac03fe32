// Offline evaluation of classifier versions over labelled rows: per version the strong tier's precision,
// recall and F1, the misroute rate and the weak-tier share (the two SLOs operators watch together), the
// confusion matrix, and the rows on which versions disagree.
import type { Classifier, ClassifierDecision } from '../classify/engine.js';
import { noteSkipped, preview, skippedLines, type RowResult, type SkippedRows } from './labelled-rows.js';

export interface Slo {
  /** Misroute rate must not exceed this (0.05 = 5%). */
  maxMisroute: number;
  /** Weak-tier share must lie within [min, max]. */
  weakShare: [number, number];
}

export const DEFAULT_SLO: Slo = { maxMisroute: 0.05, weakShare: [0.6, 0.7] };

export interface VersionReport {
  version: string;
  rows: number;
  strong_precision: number | null;
  strong_recall: number | null;
  f1: number | null;
  /** (false weak + false strong) / rows; with more than two tiers, any wrong tier. */
  misroute_rate: number | null;
  false_weak: number;
  false_strong: number;
  weak_tier_share: number | null;
  /** confusion[true tier][routed tier] = rows. */
  confusion: Record<string, Record<string, number>>;
  /** Rows decided by each rule (near_threshold included): what to sample for labelling. */
  by_rule: Record<string, number>;
  slo: { misroute: boolean; weak_share: boolean };
}

export interface Disagreement {
  line: number;
  id: string;
  label: string | undefined;
  decisions: Array<{ version: string; tier: string; rule: string; reason: string }>;
  prompt: string;
}

export interface EvalReport extends SkippedRows {
  file: string;
  rows: number;
  /** Rows without a label: classified (they can still disagree) but not scored. */
  unlabelled: number;
  /** Rows whose label is not a configured tier: not scored. */
  unknown_label: number;
  strong_tier: string;
  weak_tier: string;
  slo: Slo;
  versions: VersionReport[];
  disagreements: { rows: number; listed: Disagreement[] };
}

export interface EvalOptions {
  file: string;
  versions: ReadonlyArray<{ name: string; classify: Classifier }>;
  tiers: readonly string[];
  strongTier: string;
  weakTier: string;
  slo: Slo;
  /** How many disagreeing rows to keep for the report (all are counted). */
  listDisagreements: number;
}

export async function evaluate(rows: AsyncIterable<RowResult>, opts: EvalOptions): Promise<EvalReport> {
  const known = new Set(opts.tiers);
  const confusions = opts.versions.map(() => new Map<string, Map<string, number>>());
  const byRule = opts.versions.map(() => new Map<string, number>());
  const report: EvalReport = {
    file: opts.file,
    rows: 0,
    skipped: 0,
    skipped_examples: [],
    unlabelled: 0,
    unknown_label: 0,
    strong_tier: opts.strongTier,
    weak_tier: opts.weakTier,
    slo: opts.slo,
    versions: [],
    disagreements: { rows: 0, listed: [] },
  };
  for await (const r of rows) {
    if (!r.ok) {
      noteSkipped(report, r.bad);
      continue;
    }
    const { row } = r;
    const decisions: ClassifierDecision[] = opts.versions.map((v) => v.classify(row.messages, { tools: row.tools }));
    const scored = row.label !== undefined && known.has(row.label);
    if (row.label === undefined) report.unlabelled++;
    else if (!scored) report.unknown_label++;
    if (scored) {
      report.rows++;
      decisions.forEach((d, i) => {
        bump(confusions[i] as Map<string, Map<string, number>>, row.label as string, d.tier);
        const rules = byRule[i] as Map<string, number>;
        rules.set(d.rule, (rules.get(d.rule) ?? 0) + 1);
      });
    }
    if (decisions.some((d) => d.tier !== (decisions[0] as ClassifierDecision).tier)) {
      report.disagreements.rows++;
      if (report.disagreements.listed.length < opts.listDisagreements) {
        report.disagreements.listed.push({
          line: row.line,
          id: row.id,
          label: row.label,
          decisions: decisions.map((d) => ({ version: d.version, tier: d.tier, rule: d.rule, reason: d.reason })),
          prompt: preview(row.messages),
        });
      }
    }
  }
  report.versions = opts.versions.map((v, i) => versionReport(v.name, confusions[i] as Map<string, Map<string, number>>, byRule[i] as Map<string, number>, opts));
  return report;
}

function bump(m: Map<string, Map<string, number>>, truth: string, predicted: string): void {
  let row = m.get(truth);
  if (!row) m.set(truth, (row = new Map()));
  row.set(predicted, (row.get(predicted) ?? 0) + 1);
}

/** Metrics from a confusion matrix, with the strong tier as the positive class. */
export function versionReport(version: string, m: Map<string, Map<string, number>>, rules: Map<string, number>, o: Pick<EvalOptions, 'strongTier' | 'weakTier' | 'slo' | 'tiers'>): VersionReport {
  const cell = (t: string, p: string) => m.get(t)?.get(p) ?? 0;
  let n = 0;
  let correct = 0;
  let predictedStrong = 0;
  let actualStrong = 0;
  let predictedWeak = 0;
  for (const [t, row] of m) {
    for (const [p, k] of row) {
      n += k;
      if (t === p) correct += k;
      if (p === o.strongTier) predictedStrong += k;
      if (t === o.strongTier) actualStrong += k;
      if (p === o.weakTier) predictedWeak += k;
    }
  }
  const tp = cell(o.strongTier, o.strongTier);
  const precision = predictedStrong > 0 ? tp / predictedStrong : null;
  const recall = actualStrong > 0 ? tp / actualStrong : null;
  const f1 = precision !== null && recall !== null && precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : null;
  const misroute = n > 0 ? (n - correct) / n : null;
  const weakShare = n > 0 ? predictedWeak / n : null;
  const tiers = [...new Set([...o.tiers, ...m.keys(), ...[...m.values()].flatMap((r) => [...r.keys()])])];
  const confusion: Record<string, Record<string, number>> = {};
  for (const t of tiers) {
    if (!m.has(t)) continue;
    confusion[t] = Object.fromEntries(tiers.map((p) => [p, cell(t, p)]));
  }
  return {
    version,
    rows: n,
    strong_precision: precision,
    strong_recall: recall,
    f1,
    misroute_rate: misroute,
    false_weak: cell(o.strongTier, o.weakTier),
    false_strong: cell(o.weakTier, o.strongTier),
    weak_tier_share: weakShare,
    confusion,
    by_rule: Object.fromEntries([...rules].sort((a, b) => b[1] - a[1])),
    slo: {
      misroute: misroute !== null && misroute <= o.slo.maxMisroute,
      weak_share: weakShare !== null && weakShare >= o.slo.weakShare[0] && weakShare <= o.slo.weakShare[1],
    },
  };
}

export function formatEval(r: EvalReport): string {
  const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(1)}%`);
  const num = (x: number | null) => (x === null ? '-' : x.toFixed(3));
  const mark = (ok: boolean) => (ok ? 'ok' : 'MISS');
  const out: string[] = [];
  out.push(`tiergate eval ${r.file}: ${r.rows} labelled rows scored` + (r.skipped || r.unlabelled || r.unknown_label ? ` (skipped ${r.skipped} unreadable, ${r.unlabelled} unlabelled, ${r.unknown_label} with a label that is no tier)` : ''));
  out.push(...skippedLines(r));
  out.push('');
  const w = Math.max(10, ...r.versions.map((v) => v.version.length + 2));
  const cols = (label: string, cells: string[]) => `${label.padEnd(22)}${cells.map((c) => c.padStart(w)).join('')}`;
  out.push(cols('', r.versions.map((v) => v.version)));
  out.push(cols(`${r.strong_tier} precision`, r.versions.map((v) => num(v.strong_precision))));
  out.push(cols(`${r.strong_tier} recall`, r.versions.map((v) => num(v.strong_recall))));
  out.push(cols('F1', r.versions.map((v) => num(v.f1))));
  out.push(cols('misroute rate', r.versions.map((v) => pct(v.misroute_rate))));
  out.push(cols(`  false ${r.weak_tier}`, r.versions.map((v) => String(v.false_weak))));
  out.push(cols(`  false ${r.strong_tier}`, r.versions.map((v) => String(v.false_strong))));
  out.push(cols(`${r.weak_tier}-tier share`, r.versions.map((v) => pct(v.weak_tier_share))));
  out.push(cols(`SLO misroute ≤ ${pct(r.slo.maxMisroute)}`, r.versions.map((v) => mark(v.slo.misroute))));
  out.push(cols(`SLO ${r.weak_tier} ${pct(r.slo.weakShare[0])}–${pct(r.slo.weakShare[1])}`, r.versions.map((v) => mark(v.slo.weak_share))));
  for (const v of r.versions) {
    out.push('', `confusion ${v.version} (rows: true tier, columns: routed tier)`);
    const tiers = Object.keys(v.confusion[Object.keys(v.confusion)[0] ?? ''] ?? {});
    const cw = Math.max(8, ...tiers.map((t) => t.length + 2));
    out.push(`  ${''.padEnd(12)}${tiers.map((t) => t.padStart(cw)).join('')}`);
    for (const [t, row] of Object.entries(v.confusion)) out.push(`  ${t.padEnd(12)}${tiers.map((p) => String(row[p] ?? 0).padStart(cw)).join('')}`);
    out.push(`  decided by: ${Object.entries(v.by_rule).map(([rule, k]) => `${rule} ${k}`).join(', ')}`);
  }
  if (r.versions.length > 1) {
    const d = r.disagreements;
    out.push('', `disagreements: ${d.rows} rows${d.listed.length < d.rows ? ` (first ${d.listed.length})` : ''}`);
    for (const x of d.listed) {
      const label = x.label === undefined ? 'unlabelled' : `label ${x.label}`;
      out.push(`  line ${x.line}${x.id !== String(x.line) ? ` id ${x.id}` : ''} (${label}): ${x.decisions.map((c) => `${c.version} ${c.tier} [${c.reason}]`).join(' | ')}`);
      out.push(`      ${JSON.stringify(x.prompt)}`);
    }
  }
  return `${out.join('\n')}\n`;
}
