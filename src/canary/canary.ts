// `tiergate canary`: status, set, promote, rollback, check. Weights move only through guarded JSON patches
// (route-weights.ts); promotion is gated on the canary's health in Prometheus between steps, and `check` (run
// as a CronJob) rolls back a canary whose 5xx rate, 4xx rate above the stable's, or p99 is over the thresholds.
import type { Kubectl } from './kubectl.js';
import { missingData, overThreshold, unhealthy, type Backend, type Health, type Prometheus, type Thresholds } from './prometheus.js';
import { UsageError } from '../usage-error.js';
import { canaryPercent, formatPercent, readWeights, weightPatch, type CanaryTarget, type JsonPatchOp, type RouteWeights } from './route-weights.js';

export const PROMOTE_STEPS = [10, 50, 100] as const;

export interface CanaryDeps {
  kubectl: Kubectl;
  prometheus: Prometheus | undefined;
  out: (line: string) => void;
  sleep: (ms: number) => Promise<void>;
}

export interface CanaryOptions extends Thresholds {
  target: CanaryTarget;
  dryRun: boolean;
  /** How long traffic runs at a step before its health is judged (promote). */
  intervalMs: number;
  /** Prometheus range for the rates, e.g. "5m". */
  window: string;
}

export class Canary {
  constructor(
    private readonly deps: CanaryDeps,
    private readonly opts: CanaryOptions,
  ) {}

  async status(): Promise<RouteWeights> {
    const w = await this.weights();
    const t = this.opts.target;
    this.deps.out(`${t.namespace}/${t.route} rule ${t.rule}: ${t.stable}=${w.stable} ${t.canary}=${w.canary} (canary ${formatPercent(canaryPercent(w))})`);
    return w;
  }

  async set(percent: number): Promise<void> {
    const w = await this.weights();
    await this.apply(weightPatch(this.opts.target, w.ruleIndex, percent), percent);
  }

  async rollback(): Promise<void> {
    await this.set(0);
  }

  /** 10 → 50 → 100 from wherever the canary is, judging its health after each step; any bad step rolls back. */
  async promote(): Promise<boolean> {
    const prom = this.requirePrometheus();
    const w = await this.weights();
    const current = canaryPercent(w);
    const steps = PROMOTE_STEPS.filter((s) => s > current);
    if (steps.length > 0 && !(await this.fitToPromote(prom, w, current))) return false;
    for (const step of steps) {
      await this.apply(weightPatch(this.opts.target, w.ruleIndex, step), step);
      if (this.opts.dryRun) continue;
      await this.deps.sleep(this.opts.intervalMs);
      const why = await this.judged(prom, w);
      if (why) {
        this.deps.out(`canary unhealthy at ${step}%: ${why}; rolling back`);
        await this.apply(weightPatch(this.opts.target, w.ruleIndex, 0), 0);
        return false;
      }
      this.deps.out(`canary healthy at ${step}%`);
    }
    this.deps.out('canary promoted: it takes all of the tier’s traffic');
    return true;
  }

  /**
   * Asked once before any weight moves. A Prometheus that cannot answer (a mistyped host, a query refused) was
   * found only after the first step's interval, and that step rolled back: a canary that may have been healthy
   * pulled off its traffic because of a typo. Now that stops promote with nothing changed (an error, exit 1). A
   * canary already serving that is over a threshold is not promoted but rolled back, as a bad step is; one with
   * no data yet is judged after the first step.
   */
  private async fitToPromote(prom: Prometheus, w: RouteWeights, current: number): Promise<boolean> {
    let health: Health;
    try {
      health = await this.healthOf(prom, w);
    } catch (err) {
      throw new Error(`the canary's health cannot be read, so nothing was changed: ${(err as Error).message}`);
    }
    // At 0% what the window holds is an earlier canary's (one rolled back minutes ago), not this one's.
    if (current === 0) return true;
    const why = overThreshold(health, this.opts);
    if (!why) return true;
    this.deps.out(`canary unhealthy at ${formatPercent(current)} before promotion: ${why}; rolling back`);
    await this.apply(weightPatch(this.opts.target, w.ruleIndex, 0), 0);
    return false;
  }

  /** The CronJob's check: a canary with traffic that is unhealthy is rolled back. No traffic is left alone. */
  async check(): Promise<'healthy' | 'idle' | 'rolled-back'> {
    const prom = this.requirePrometheus();
    const w = await this.weights();
    if (canaryPercent(w) === 0) {
      this.deps.out('canary at 0%: nothing to check');
      return 'idle';
    }
    const h = await this.healthOf(prom, w);
    // A measure over its threshold rolls back even when the other has no data (a canary that answers nothing).
    const why = overThreshold(h, this.opts);
    if (why) {
      this.deps.out(`canary unhealthy: ${why}; rolling back`);
      await this.apply(weightPatch(this.opts.target, w.ruleIndex, 0), 0);
      return 'rolled-back';
    }
    const missing = missingData(h);
    if (missing) {
      this.deps.out(`${missing}: nothing to judge`);
      return 'idle';
    }
    this.deps.out('canary healthy');
    return 'healthy';
  }

  /**
   * Why the canary may not go on, or undefined when it is healthy. Health that cannot be read (Prometheus down or
   * refusing the query) stops it too, as no data does: the step was taken, and nothing says it is safe to keep.
   * Before, the error ended `promote` with the canary left at the step's share and no one judging it.
   */
  private async judged(prom: Prometheus, w: RouteWeights): Promise<string | undefined> {
    try {
      return unhealthy(await this.healthOf(prom, w), this.opts);
    } catch (err) {
      return `its health could not be read (${(err as Error).message})`;
    }
  }

  /** The canary's health, its Services in the namespaces their backendRefs name (model servers may live apart from the route). */
  private healthOf(prom: Prometheus, w: RouteWeights): Promise<Health> {
    const stable: Backend = { namespace: w.stableNamespace, name: this.opts.target.stable };
    return prom.health({ namespace: w.canaryNamespace, name: this.opts.target.canary }, stable, this.opts.window);
  }

  private async weights(): Promise<RouteWeights> {
    return readWeights((await this.deps.kubectl.getRoute(this.opts.target)) as never, this.opts.target);
  }

  private async apply(patch: JsonPatchOp[], percent: number): Promise<void> {
    const t = this.opts.target;
    if (this.opts.dryRun) {
      this.deps.out(`dry run: kubectl -n ${t.namespace} patch httproute ${t.route} --type=json -p '${JSON.stringify(patch)}'`);
      return;
    }
    await this.deps.kubectl.patchRoute(t, patch);
    this.deps.out(`canary set to ${percent}% (${t.stable}=${100 - percent} ${t.canary}=${percent})`);
  }

  private requirePrometheus(): Prometheus {
    if (!this.deps.prometheus) throw new UsageError('--prometheus URL (or PROMETHEUS_URL) is required to judge the canary');
    return this.deps.prometheus;
  }
}
