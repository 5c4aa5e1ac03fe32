// Reconciles the budget store refused during an outage, kept across a restart. A process that stops while Redis
// is away would otherwise drop them: each request's reservation (its completion estimate, ~1,000 tokens) would
// hold the tenant's budget until it expires (budgets.reservationTtlMs, 10 minutes), and what the request really
// used would never be counted. A rolling restart during a Redis incident is exactly when that happens. So what is
// still unsent at shutdown is written to a file in the ledger's spool directory, the local state that survives a
// container restart, and the next process there sends it. Reconciles count once in the store, so one sent twice
// (it reached Redis but its answer did not come back) is harmless.
import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync, readdirSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { Bucket } from '../stores/budget-store.js';
import type { Logger } from '../telemetry/logger.js';

/** One reconcile as the store takes it: release `id`'s reservation, count what was really used. */
export interface KeptReconcile {
  id: string;
  buckets: Bucket[];
  tokens: number;
  microUsd: number;
}

const keptSchema = z.object({
  id: z.string().min(1),
  buckets: z
    .array(
      z.object({
        key: z.string().min(1),
        code: z.string().min(1),
        unit: z.enum(['requests', 'tokens', 'usd', 'concurrent']),
        limit: z.number(),
        resetAt: z.number(),
        expireAt: z.number(),
      }),
    )
    .min(1),
  tokens: z.number().nonnegative(),
  microUsd: z.number().nonnegative(),
});

export const KEPT_RECONCILES_FILE = 'budget-reconciles.jsonl';

export class KeptReconcileFile {
  private readonly path: string;

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {
    this.path = join(dir, KEPT_RECONCILES_FILE);
  }

  /**
   * The reconciles earlier processes left here. Each file is claimed first (renamed), so two processes started on
   * one directory never both take it; a claimed file a process left behind (it stopped between claiming and
   * reading) is taken too. A line that does not parse (a write cut short) is skipped and logged.
   */
  take(): KeptReconcile[] {
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((n) => n === KEPT_RECONCILES_FILE || (n.startsWith(`${KEPT_RECONCILES_FILE}.`) && n.endsWith('.taking')));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.log.error({ event: 'budget.kept_reconciles_unreadable', error: (e as Error).message });
      return [];
    }
    let text = '';
    for (const name of names) {
      const claimed = join(this.dir, `${KEPT_RECONCILES_FILE}.${process.pid}-${randomUUID()}.taking`);
      try {
        renameSync(join(this.dir, name), claimed);
      } catch (e) {
        // Another process claimed it first.
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.log.error({ event: 'budget.kept_reconciles_unreadable', error: (e as Error).message });
        continue;
      }
      try {
        text += `${readFileSync(claimed, 'utf8')}\n`;
        unlinkSync(claimed);
      } catch (e) {
        this.log.error({ event: 'budget.kept_reconciles_unreadable', error: (e as Error).message });
      }
    }
    const kept: KeptReconcile[] = [];
    let skipped = 0;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const parsed = parseLine(line);
      if (parsed) kept.push(parsed);
      else skipped++;
    }
    if (skipped > 0) this.log.error({ event: 'budget.kept_reconciles_skipped', lines: skipped });
    if (kept.length > 0) this.log.info({ event: 'budget.kept_reconciles_loaded', reconciles: kept.length });
    return kept;
  }

  /** Appends `kept` for the next process; false (and logged) when the disk refuses them. */
  save(kept: readonly KeptReconcile[]): boolean {
    try {
      mkdirSync(this.dir, { recursive: true }); // the ledger makes its spool directory only when it first spools
      appendFileSync(this.path, kept.map((k) => `${JSON.stringify(k)}\n`).join(''));
      this.log.warn({ event: 'budget.kept_reconciles_saved', reconciles: kept.length });
      return true;
    } catch (e) {
      this.log.error({ event: 'budget.kept_reconciles_lost', reconciles: kept.length, error: (e as Error).message });
      return false;
    }
  }
}

function parseLine(line: string): KeptReconcile | undefined {
  try {
    const r = keptSchema.safeParse(JSON.parse(line));
    return r.success ? (r.data as KeptReconcile) : undefined;
  } catch {
    return undefined;
  }
}

