// `tiergate ledger rollup` and `tiergate ledger import`: what finance and operators run against the ledger.
import { statSync } from 'node:fs';
import { DEFAULT_LEDGER_STREAM } from '../config/schema.js';
import { loadInitialConfig } from '../main.js';
import { parseFlags, UsageError } from '../usage-error.js';
import { LOGGED_ROW_EVENTS, loggedBatches } from './import.js';
import { createSinks } from './sinks.js';
import { datesInLogs, dayScanStart, ledgerFilesFor, rowsFromFiles, rowsFromLogs, rowsFromRedis, streamLostBefore } from './read.js';
import { ledgerFileName } from './file-sink.js';
import { fileProblem } from '../text-lines.js';
import { InvalidRowError } from './row-check.js';
import { daysOf, rollup, type Period } from './rollup.js';
import { formatRollup, formatRollupCsv } from './rollup-format.js';

export const LEDGER_USAGE = `  tiergate ledger rollup [--day YYYY-MM-DD | --month YYYY-MM | --from YYYY-MM-DD --to YYYY-MM-DD]
      (--file FILE|DIR | --redis URL [--cluster] [--stream KEY] | --logs LOG...) [--weak-tier NAME] [--json | --csv]
      [--skip-invalid] [--allow-trimmed]
  tiergate ledger import [--config FILE] LOG...
`;

/**
 * Rows a shutdown logged in full (`ledger.rows_unsaved`, `ledger.rows_left_in_spool`), from log files into the
 * configured sinks they were meant for. The logs are read twice, a batch at a time: first every row is checked
 * and every sink named is found in the config, so nothing is written unless all of it is sound; then the rows
 * are sent. A second run stores nothing twice (import.ts).
 */
export async function ledgerImport(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags({ args, options: { config: { type: 'string' } }, allowPositionals: true });
  if (positionals.length === 0) throw new UsageError(`name the log files to read ${LOGGED_ROW_EVENTS.join(' and ')} lines from`);
  const problem = fileProblem(positionals, 'log file');
  if (problem) throw new Error(problem);
  const { config } = await loadInitialConfig(values.config, process.env);
  const sinks = createSinks(config.ledger.sinks);
  try {
    const byName = new Map(sinks.map((s) => [s.name, s]));
    let found = false;
    const skipped = (file: string, line: number) => process.stderr.write(`${file}:${line}: names a ledger row event but holds no JSON log record: passed over\n`);
    for await (const b of loggedBatches(positionals, skipped)) {
      found = true;
      if (!byName.has(b.sink)) throw new Error(`${b.file}:${b.line}: rows for sink "${b.sink}", which this config does not have (sinks: ${[...byName.keys()].join(', ')})`);
    }
    if (!found) process.stdout.write(`no ${LOGGED_ROW_EVENTS.join(' or ')} lines found\n`);
    const sent = new Map<string, number>();
    let repeated = 0;
    for await (const b of loggedBatches(positionals)) {
      if (b.entries.length > 0) await byName.get(b.sink)?.write(b.entries);
      sent.set(b.sink, (sent.get(b.sink) ?? 0) + b.entries.length);
      repeated += b.repeated;
    }
    for (const [sink, rows] of sent) process.stdout.write(`sink ${sink}: ${rows} row${rows === 1 ? '' : 's'} sent (a row it already held is not stored again)\n`);
    if (repeated > 0) process.stdout.write(`${repeated} row${repeated === 1 ? '' : 's'} logged more than once, sent once\n`);
    return 0;
  } finally {
    await Promise.allSettled(sinks.map((s) => s.close()));
  }
}

/** `usage`: the command's whole usage text, shown after a mistake on the command line. */
export async function ledgerRollup(args: string[], usage: string): Promise<number> {
  const { values, positionals } = parseFlags({
    args,
    allowPositionals: true,
    options: {
      day: { type: 'string' },
      month: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      file: { type: 'string' },
      redis: { type: 'string' },
      stream: { type: 'string' },
      cluster: { type: 'boolean' },
      logs: { type: 'boolean' },
      'weak-tier': { type: 'string' },
      json: { type: 'boolean' },
      csv: { type: 'boolean' },
      'skip-invalid': { type: 'boolean' },
      'allow-trimmed': { type: 'boolean' },
    },
  });
  const fail = (message: string) => {
    process.stderr.write(`${message}\n`);
    return 2;
  };
  const period = rollupPeriod(values);
  if (typeof period === 'string') return fail(period);
  if ([values.file, values.redis, values.logs].filter(Boolean).length !== 1) return fail(`name one source: --file FILE|DIR, --redis URL or --logs LOG...\n${usage}`);
  if (values.logs ? positionals.length === 0 : positionals.length > 0) return fail(values.logs ? '--logs: name the log files to read' : `unexpected argument: ${positionals[0]}\n${usage}`);
  const problem = fileProblem(positionals, 'log file');
  if (problem) return fail(problem);
  if (values.json && values.csv) return fail('--json and --csv: choose one');
  const file = values.file;
  if (file !== undefined && !period && statSync(file, { throwIfNoEntry: false })?.isDirectory()) {
    return fail(`${file} is a directory: name a period (--day, --month or --from/--to) to read its ledger-YYYY-MM-DD.jsonl files`);
  }
  if (file !== undefined && period) noteMissingDayFiles(file, period);
  const torn = (f: string, line: number) => process.stderr.write(`${f}:${line}: a torn last line (an append cut short by a crash) was skipped\n`);
  // A line that is not a ledger row stops the rollup, naming it, unless --skip-invalid: then each is named on
  // stderr, skipped, and counted in the output, which says the totals are incomplete.
  let skipped = 0;
  const onInvalid = values['skip-invalid']
    ? (problem: string) => {
        skipped++;
        process.stderr.write(`${problem}: skipped\n`);
      }
    : undefined;
  // Over several days and files, each day reads only the log files that can hold it (datesInLogs()).
  const logDates = values.logs && period && period.from !== period.to && positionals.length > 1 ? await datesInLogs(positionals) : undefined;
  const logsFor = (day: string | undefined) => (day && logDates ? positionals.filter((f) => logDates.get(f)?.has(day)) : positionals);
  const stream = values.stream ?? DEFAULT_LEDGER_STREAM;
  const cluster = values.cluster ?? false;
  const rowsOf = (day: string | undefined) =>
    values.logs
      ? rowsFromLogs(logsFor(day), day, onInvalid)
      : file !== undefined
        ? rowsFromFiles(ledgerFilesFor(file, day), torn, onInvalid)
        : rowsFromRedis(values.redis as string, stream, day, cluster, onInvalid);
  const trimmed = values.redis === undefined ? null : await streamTrimmedFor(values.redis, stream, cluster, period);
  if (trimmed && !values['allow-trimmed']) {
    process.stderr.write(`${trimmed.said}\nNothing was summed. Read the period from the file sink's day files, raise maxLen to hold it, or pass --allow-trimmed to sum what is left (the output then says so).\n`);
    return 1;
  }
  if (trimmed) process.stderr.write(`${trimmed.said}\n`);
  const trimmedBefore = trimmed?.before ?? null;
  let result;
  try {
    result = await rollup(rowsOf, { ...(period ? { period } : {}), weakTier: values['weak-tier'], invalidSkipped: () => skipped, trimmedBefore });
  } catch (err) {
    if (!(err instanceof InvalidRowError)) throw err;
    // Bad data, not a bad command line: exit 1, as other failures.
    process.stderr.write(`${err.message}\nNothing was summed. --skip-invalid sums the rest and says how many lines it left out.\n`);
    return 1;
  }
  process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : values.csv ? formatRollupCsv(result) : formatRollup(result));
  return 0;
}

/**
 * A directory without the file of some of the period's days: those days are summed as holding no row, which they
 * may (a day the gateway served nothing) or may not (the wrong directory, the wrong period). Said on stderr, so a
 * report of $0 from a misnamed directory is not taken for a quiet month.
 */
function noteMissingDayFiles(dir: string, period: Period): void {
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return;
  const days = daysOf(period);
  const missing = days.filter((d) => ledgerFilesFor(dir, d).length === 0);
  if (missing.length === 0) return;
  const listed = missing.length <= 5 ? missing.join(', ') : `${missing.slice(0, 2).join(', ')}, … ${missing.at(-1)}`;
  const which = days.length === 1 ? listed : missing.length === days.length ? `any day of the period (${listed})` : `${missing.length} of the period's ${days.length} days (${listed})`;
  const name = missing.length === 1 ? ledgerFileName(missing[0] as string) : 'ledger-YYYY-MM-DD.jsonl';
  process.stderr.write(`${dir}: no ${name} for ${which}: summed as ${missing.length === 1 ? 'a day' : 'days'} without rows\n`);
}

/**
 * Whether the stream's trimming (its maxLen) has lost rows of the period, or of any time without one: when it has,
 * the time before which entries are gone and what to tell the reader. Summed as they are, the totals would be too
 * low and nothing would say so; finance would bill from them. A Redis that cannot tell gets a warning.
 */
async function streamTrimmedFor(url: string, stream: string, cluster: boolean, period: Period | undefined): Promise<{ before: string; said: string } | null> {
  const lost = await streamLostBefore(url, stream, cluster);
  if (lost === undefined) {
    process.stderr.write(`${stream}: this Redis cannot say whether the stream was trimmed (XINFO STREAM counts entries-added from Redis 7.0)\n`);
    return null;
  }
  const reaches = (day: string) => dayScanStart(day) < lost;
  if (period ? !reaches(period.from) : lost === 0) return null;
  const before = new Date(lost).toISOString();
  const days = period ? daysOf(period).filter(reaches) : [];
  const which = period ? `rows of ${days.length === 1 ? days[0] : `${days[0]} to ${days.at(-1)}`} may be missing from it` : 'rows added before then are missing from it';
  return { before, said: `${stream} has lost the entries added before ${before} (trimmed by the redis sink's maxLen): ${which}, so the totals would be too low.` };
}

/** --day, --month or --from/--to (UTC days, both included) as a period; undefined for none; a string: what is wrong. */
function rollupPeriod(v: { day?: string; month?: string; from?: string; to?: string }): Period | undefined | string {
  const given = [v.day !== undefined, v.month !== undefined, v.from !== undefined || v.to !== undefined].filter(Boolean).length;
  if (given > 1) return 'name one period: --day, --month, or --from and --to';
  const isDay = (d: string) => /^\d{4}-\d{2}-\d{2}$/.test(d) && !Number.isNaN(Date.parse(`${d}T00:00:00Z`)) && new Date(`${d}T00:00:00Z`).toISOString().startsWith(d);
  if (v.day !== undefined) return isDay(v.day) ? { from: v.day, to: v.day } : `--day must be YYYY-MM-DD, got ${v.day}`;
  if (v.month !== undefined) {
    if (!/^\d{4}-\d{2}$/.test(v.month) || !isDay(`${v.month}-01`)) return `--month must be YYYY-MM, got ${v.month}`;
    const [y, m] = v.month.split('-').map(Number) as [number, number];
    return { from: `${v.month}-01`, to: new Date(Date.UTC(y, m, 0)).toISOString().slice(0, 10) };
  }
  if (v.from === undefined && v.to === undefined) return undefined;
  if (v.from === undefined || v.to === undefined) return '--from and --to go together';
  for (const d of [v.from, v.to]) if (!isDay(d)) return `--from and --to must be YYYY-MM-DD, got ${d}`;
  if (v.from > v.to) return `--from ${v.from} is after --to ${v.to}`;
  return { from: v.from, to: v.to };
}
