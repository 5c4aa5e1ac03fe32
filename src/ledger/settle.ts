// The settle step: after a stream's last answer, its record becomes a ledger row (estimating usage when none
// was reported), usage and cost metrics are counted, and the row goes to the ledger. Never throws.
import type { Budgets } from '../budget/budgets.js';
import type { Runtime } from '../config/runtime.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { buildRow, statusOf, type BuiltRow, type RequestRecord } from './build-row.js';
import type { Ledger } from './ledger.js';
import type { LedgerRow } from './row.js';
import { microUsdOf } from '../usage/price-table.js';

/** Unknown models (and service tiers) are logged once each (up to this many), then only counted. */
const MAX_UNPRICED_LOGGED = 100;

export function createSettle(ledger: Ledger, metrics: Metrics, log: Logger, budgets: Budgets): (record: RequestRecord, runtime: Runtime) => void {
  const unpricedLogged = new Set<string>();
  const logOnce = (key: string, line: Record<string, unknown>): void => {
    if (unpricedLogged.has(key) || unpricedLogged.size >= MAX_UNPRICED_LOGGED) return;
    unpricedLogged.add(key);
    log.warn(line);
  };
  const finish = ({ row, unpriced, unmeasured }: BuiltRow, runtime: Runtime, record: RequestRecord): LedgerRow => {
    record.span?.end(row, record.facts);
    // The reservation becomes what was really used (zero for a request that never reached a backend).
    if (record.admission) {
      const a = record.admission;
      const tokens = row.usage.total_tokens;
      const microUsd = microUsdOf(row.cost_usd?.total);
      // An answer that went on without tiergate (detached at a shutdown) may use all it reserved, and no more is
      // heard of it: the row counts only what had passed, so the budget keeps the reservation when that is more.
      if (record.detached && statusOf(record) === 'cancelled') budgets.reconcile(a, Math.max(tokens, a.reserved), Math.max(microUsd ?? a.reservedMicroUsd, a.reservedMicroUsd));
      else budgets.reconcile(a, tokens, microUsd);
    }
    count(metrics, row);
    // Two ways to mend it, so told apart: add a price, or have the usage measured (ledger.unmeasured_usage says where).
    if (unpriced) metrics.unpriced.inc({ reason: unmeasured ? 'unmeasured' : 'price' });
    const model = row.model_resolved ?? '(none)';
    if (unmeasured) {
      // Not the model's price: what the request or the answer held was never seen. Once per path and model.
      const what = unmeasured.input && unmeasured.output ? 'request_and_answer' : unmeasured.input ? 'request' : 'answer';
      logOnce(`unmeasured\n${row.path}\n${model}\n${what}`, { event: 'ledger.unmeasured_usage', path: row.path, model, unmeasured: what, price_table_version: runtime.prices.version });
    } else if (unpriced) {
      // A model priced by service tier is unpriced on a tier it does not list, and one without audio prices on an
      // answer with audio: logged once per model, tier and whether there was audio.
      const tier = row.service_tier;
      const audio = hasAudio(row.usage);
      logOnce(`${model}\n${tier ?? ''}\n${audio}`, { event: 'ledger.unpriced_model', model, ...(tier === null ? {} : { service_tier: tier }), ...(audio ? { audio: true } : {}), price_table_version: runtime.prices.version });
    }
    return row;
  };
  return (record, runtime) => {
    try {
      const built = buildRow(record, runtime.prices);
      // A row that could not be built still ends its span, with what the stream knew.
      ledger.record(built instanceof Promise ? built.then((b) => finish(b, runtime, record), (err) => unbuilt(record, err)) : finish(built, runtime, record));
    } catch (err) {
      // No usage to reconcile with: the reservation stays until it expires, so the budget errs on the safe side.
      ledger.record(Promise.reject(err));
      record.span?.end(undefined, undefined);
    }
  };
}

function unbuilt(record: RequestRecord, err: unknown): never {
  record.span?.end(undefined, undefined);
  throw err;
}

const hasAudio = (u: LedgerRow['usage']): boolean => Boolean(u.audio_input_tokens || u.audio_output_tokens || u.audio_seconds);

function count(m: Metrics, row: LedgerRow): void {
  m.usageRows.inc({ source: row.usage_source });
  const tier = row.tier ?? 'none';
  const u = row.usage;
  if (u.input_tokens) m.tokens.inc({ tier, kind: 'input' }, u.input_tokens);
  if (u.output_tokens) m.tokens.inc({ tier, kind: 'output' }, u.output_tokens);
  if (u.cached_input_tokens) m.tokens.inc({ tier, kind: 'cached_input' }, u.cached_input_tokens);
  if (u.reasoning_tokens) m.tokens.inc({ tier, kind: 'reasoning' }, u.reasoning_tokens);
  if (u.audio_input_tokens) m.tokens.inc({ tier, kind: 'audio_input' }, u.audio_input_tokens);
  if (u.audio_output_tokens) m.tokens.inc({ tier, kind: 'audio_output' }, u.audio_output_tokens);
  if (u.image_input_tokens) m.tokens.inc({ tier, kind: 'image_input' }, u.image_input_tokens);
  if (u.image_output_tokens) m.tokens.inc({ tier, kind: 'image_output' }, u.image_output_tokens);
  if (row.cost_usd?.total) m.costUsd.inc({ tier }, row.cost_usd.total);
  if (row.fallback_used) m.fallbacks.inc({ tier });
}
