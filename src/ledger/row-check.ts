// What a reader of the ledger (the rollup) relies on in each row, checked as the row is read. A line that is
// JSON but not a ledger row (`{}`, a row cut down by hand, a log line pasted into the file) is then an error
// that names where it is, instead of a TypeError from deep inside the sums, or a sum quietly made NaN.
import { z } from 'zod';
import type { LedgerRow } from './row.js';

const text = z.string();
const maybeText = z.string().nullable();
const amount = z.number().finite().nonnegative();
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T/;

/** Only the fields the rollup reads; the rest of a row passes as it is. */
const readableRow = z.looseObject({
  timestamp: z.string().regex(TIMESTAMP, 'an ISO timestamp'),
  request_id: text,
  tenant_id: text,
  feature_id: maybeText,
  tier: maybeText,
  // Rows written before 2026-12-03 have none.
  service_tier: maybeText.optional(),
  shadow_tier: maybeText,
  classifier_version: maybeText,
  classifier_rule: maybeText,
  status: z.enum(['success', 'cache_hit', 'rejected', 'upstream_error', 'cancelled']),
  http_status: z.number().int().nullable(),
  usage: z.looseObject({ input_tokens: amount, output_tokens: amount, total_tokens: amount }),
  cost_usd: z.looseObject({ total: amount }).nullable(),
  saved_usd: amount.nullable(),
  cache_hit: z.boolean(),
  latency_ms: z.looseObject({ total: amount }),
  // What tells one row from another (a row sent twice keeps it): never empty.
  event_id: z.string().min(1),
});

const STATUSES: ReadonlySet<unknown> = new Set(readableRow.shape.status.options);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isText = (v: unknown) => typeof v === 'string';
const isMaybeText = (v: unknown) => v === null || typeof v === 'string';
const isAmount = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/**
 * The schema's conditions written out, to pass the rows that plainly meet them without it: zod takes ~5 µs a
 * row and this ~0.05, and a busy day's rollup reads tens of millions of rows. It may only be stricter than the
 * schema, never looser (a generated test holds it to that): a row it does not pass goes to the schema, which
 * decides and names what is wrong.
 */
export function plainlyReadable(v: unknown): boolean {
  if (!isObject(v)) return false;
  const { usage, cost_usd: cost, latency_ms: latency, http_status: http, saved_usd: saved } = v;
  return (
    isText(v.timestamp) &&
    TIMESTAMP.test(v.timestamp as string) &&
    isText(v.request_id) &&
    isText(v.tenant_id) &&
    isMaybeText(v.feature_id) &&
    isMaybeText(v.tier) &&
    (v.service_tier === undefined || isMaybeText(v.service_tier)) &&
    isMaybeText(v.shadow_tier) &&
    isMaybeText(v.classifier_version) &&
    isMaybeText(v.classifier_rule) &&
    STATUSES.has(v.status) &&
    (http === null || (typeof http === 'number' && Number.isSafeInteger(http))) &&
    isObject(usage) &&
    isAmount(usage.input_tokens) &&
    isAmount(usage.output_tokens) &&
    isAmount(usage.total_tokens) &&
    (cost === null || (isObject(cost) && isAmount(cost.total))) &&
    (saved === null || isAmount(saved)) &&
    typeof v.cache_hit === 'boolean' &&
    isObject(latency) &&
    isAmount(latency.total) &&
    typeof v.event_id === 'string' &&
    v.event_id.length > 0
  );
}

/** Whether the schema itself takes `v` (tests hold plainlyReadable to it). */
export const readableBySchema = (v: unknown): boolean => readableRow.safeParse(v).success;

/** `value` as a ledger row, or an error naming `where` and the first field that is wrong. */
export function checkedRow(value: unknown, where: string): LedgerRow {
  if (plainlyReadable(value)) return value as LedgerRow;
  const parsed = readableRow.safeParse(value);
  if (parsed.success) return value as LedgerRow;
  const issue = parsed.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.join('.') : undefined;
  throw new InvalidRowError(`${where}: not a ledger row (${field ? `${field}: ` : ''}${issue?.message ?? 'invalid'})`);
}

export class InvalidRowError extends Error {}
