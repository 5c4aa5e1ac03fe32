// Counters exported at 0 before their first event, for the alerts that watch them (see startAtZero).
import type { Metrics } from './metrics.js';

/** What the counters startAtZero presets can be labelled with, where that depends on the config or the wiring. */
export interface ZeroLabels {
  phases: readonly string[];
  failureRules: readonly string[];
  sinks: readonly string[];
  skippableStages: readonly string[];
}

/** What Envoy may leave unsent, and what tiergate does about it (LlmStream). */
export const BODY_NOT_SENT = [
  ['request', 'refused'],
  ['request', 'passed'],
  ['response', 'unmeasured'],
] as const;
export type BodyNotSent = (typeof BODY_NOT_SENT)[number];

/** Filter modes under which tiergate cannot route a request, which it refuses (LlmStream). */
export const FILTER_MODES_REFUSED = ['request_headers_skipped', 'request_body_streamed'] as const;
export type FilterModeRefused = (typeof FILTER_MODES_REFUSED)[number];

/**
 * The shipped alerts fire on `increase(counter[10m]) > 0` (kgateway-manifests/base/prometheusrule.yaml:
 * TiergateUnpricedRequests, TiergateLedgerRowsOnlyInLog, TiergateProcessingErrors, TiergateStageSkipped,
 * TiergateBodyNotSent, TiergateFilterModeRefused), and Prometheus takes no increase from a series' first
 * sample. A labelled counter is exported only once a label set is first counted, so it appeared at its first
 * event already at 1 (or at the burst's size), and that event, say rows logged instead of stored, never raised
 * its alert. Every label set those alerts can see starts at 0.
 */
export function startAtZero(m: Metrics, l: ZeroLabels): void {
  for (const reason of ['price', 'unmeasured']) m.unpriced.inc({ reason }, 0);
  for (const sink of l.sinks) m.ledgerRows.inc({ sink, result: 'unsaved' }, 0);
  for (const phase of l.phases) for (const rule of l.failureRules) m.processingErrors.inc({ phase, rule }, 0);
  for (const stage of l.skippableStages) m.stageSkipped.inc({ stage }, 0);
  for (const [body, answer] of BODY_NOT_SENT) m.bodyNotSent.inc({ body, answer }, 0);
  for (const mode of FILTER_MODES_REFUSED) m.filterModeRefused.inc({ mode }, 0);
}
