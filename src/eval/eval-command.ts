// Argument parsing and wiring for `tiergate eval` and `tiergate keywords`. Both read the classifier versions
// from a config file (the embedded defaults when none is named), so what is evaluated is exactly what serves.
import { compileClassifier } from '../classify/engine.js';
import type { VersionConfig } from '../classify/rules-schema.js';
import { V7 } from '../classify/v7.js';
import { defaultConfig, loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { numberFlag, parseFlags, UsageError } from '../usage-error.js';
import { DEFAULT_SLO, evaluate, formatEval, type EvalReport, type Slo } from './evaluate.js';
import { formatKeywords, keywordCandidates } from './keywords.js';
import { readLabelledRows, skippedLines } from './labelled-rows.js';
import { fileProblem } from '../text-lines.js';

export const EVAL_USAGE = `  tiergate eval FILE [--config FILE] [--versions v7,v8] [--format jsonl|csv|tsv] [--label-field NAME]
      [--strong-tier strong] [--weak-tier weak] [--max-misroute 0.05] [--weak-share 0.6-0.7]
      [--disagreements 20] [--json] [--check]
  tiergate keywords --from FILE [--config FILE] [--version NAME] [--all-rows] [--top 30] [--min-rows 2] [--json]
`;

const COMMON = {
  config: { type: 'string' },
  format: { type: 'string' },
  'label-field': { type: 'string' },
  'strong-tier': { type: 'string', default: 'strong' },
  'weak-tier': { type: 'string', default: 'weak' },
  json: { type: 'boolean', default: false },
} as const;

async function loadConfig(file: string | undefined): Promise<Config> {
  if (!file) return defaultConfig();
  const loaded = await loadConfigFile(file, process.env);
  if (!loaded.ok) throw new Error(`${file}: ${loaded.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
  return loaded.config;
}

function versionsOf(config: Config): Record<string, VersionConfig> {
  return { v7: V7, ...config.classifier.versions };
}

const fraction = (name: string, s: string) => numberFlag(name, s, { min: 0, max: 1, expects: 'a fraction between 0 and 1' });
const count = (name: string, s: string) => numberFlag(name, s, { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true, expects: 'a whole number' });

function needFile(file: string | undefined, flag: string): string {
  if (!file) throw new UsageError(`name the labelled file${flag}`);
  const problem = fileProblem([file], 'labelled file');
  if (problem) throw new Error(problem);
  return file;
}

/** Why no row of the file could be scored, and where a label is looked for. */
function nothingScored(r: EvalReport, labelField: string | undefined, tiers: readonly string[]): string {
  const held = [`${r.unlabelled} without a label`, `${r.unknown_label} with a label that is no tier`, `${r.skipped} unreadable`];
  const where = labelField === undefined ? 'its "tier" or "label" field (--label-field names another)' : `its "${labelField}" field`;
  // The unreadable rows' reasons too: a file of a dataset's own shape ({"question": …}) is all unreadable, and
  // the count alone did not say why.
  return [`${r.file}: no row to score (${held.join(', ')}). A row's label is read from ${where} and names a tier: ${tiers.join(', ')}`, ...skippedLines(r)].join('\n');
}

/** Returns the exit code: 0, or 1 under --check when a version misses an SLO; a file with no row to score is an error. */
export async function evalCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values, positionals } = parseFlags({
    args,
    allowPositionals: true,
    options: {
      ...COMMON,
      versions: { type: 'string' },
      'max-misroute': { type: 'string', default: String(DEFAULT_SLO.maxMisroute) },
      'weak-share': { type: 'string', default: `${DEFAULT_SLO.weakShare[0]}-${DEFAULT_SLO.weakShare[1]}` },
      disagreements: { type: 'string', default: '20' },
      check: { type: 'boolean', default: false },
    },
  });
  if (positionals.length > 1) throw new UsageError(`name one labelled file, got ${positionals.length}: ${positionals.join(' ')}`);
  const file = needFile(positionals[0], '');
  const config = await loadConfig(values.config);
  const all = versionsOf(config);
  const c = config.classifier;
  // By default: the active version and whatever is being trialled beside it.
  const names = values.versions ? values.versions.split(',').map((v) => v.trim()).filter(Boolean) : [...new Set([c.active, c.canary?.version, c.shadow].filter((v): v is string => v !== undefined))];
  for (const n of names) if (!all[n]) throw new UsageError(`unknown classifier version "${n}" (versions: ${Object.keys(all).join(', ')})`);
  const share = /^([\d.]+)-([\d.]+)$/.exec(values['weak-share']);
  if (!share) throw new UsageError(`--weak-share expects MIN-MAX, e.g. 0.6-0.7, got "${values['weak-share']}"`);
  const weakShare: Slo['weakShare'] = [fraction('weak-share', share[1] as string), fraction('weak-share', share[2] as string)];
  // A range no share falls in would fail every version's SLO, which --check would report as the classifier's fault.
  if (weakShare[0] > weakShare[1]) throw new UsageError(`--weak-share expects MIN-MAX with MIN at most MAX, got "${values['weak-share']}"`);
  const slo: Slo = { maxMisroute: fraction('max-misroute', values['max-misroute']), weakShare };
  const report = await evaluate(readLabelledRows(file, { format: values.format, labelField: values['label-field'] }), {
    file,
    versions: names.map((name) => ({ name, classify: compileClassifier(name, all[name] as VersionConfig) })),
    tiers: Object.keys(config.tiers),
    strongTier: values['strong-tier'],
    weakTier: values['weak-tier'],
    slo,
    listDisagreements: count('disagreements', values.disagreements),
  });
  // A table of dashes, an SLO "MISS" and exit 0 said nothing about why: say what the file held instead.
  if (report.rows === 0) throw new Error(nothingScored(report, values['label-field'], Object.keys(config.tiers)));
  out(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatEval(report));
  const missed = report.versions.some((v) => !v.slo.misroute || !v.slo.weak_share);
  return values.check && missed ? 1 : 0;
}

export async function keywordsCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values } = parseFlags({
    args,
    options: {
      ...COMMON,
      from: { type: 'string' },
      version: { type: 'string' },
      'all-rows': { type: 'boolean', default: false },
      top: { type: 'string', default: '30' },
      'min-rows': { type: 'string', default: '2' },
    },
  });
  const file = needFile(values.from, ' with --from FILE');
  const config = await loadConfig(values.config);
  const name = values.version ?? config.classifier.active;
  const version = versionsOf(config)[name];
  if (!version) throw new UsageError(`unknown classifier version "${name}"`);
  const existing = version.rules.flatMap((r) => r.when.flatMap((w) => ('anyKeyword' in w ? w.anyKeyword : [])));
  const report = await keywordCandidates(readLabelledRows(file, { format: values.format, labelField: values['label-field'] }), {
    classify: compileClassifier(name, version),
    allRows: values['all-rows'],
    strongTier: values['strong-tier'],
    weakTier: values['weak-tier'],
    existing,
    top: count('top', values.top),
    minRows: count('min-rows', values['min-rows']),
  });
  out(values.json ? `${JSON.stringify({ version: name, ...report }, null, 2)}\n` : formatKeywords(report, `${file} (version ${name})`));
  return 0;
}
