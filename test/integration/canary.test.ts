// `tiergate canary` as an operator runs it, against a stand-in kubectl on PATH and a stand-in Prometheus: the
// exact kubectl calls and JSON patch documents, the guards that refuse a changed route, promotion gated on
// health, and the CronJob's rollback check.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { kustomizeBuild, manifestsDir } from '../helpers/kustomize.js';
import { kubectlStandIn, prometheusStandIn, type KubectlStandIn, type PrometheusStandIn } from '../helpers/stand-ins.js';
import { canaryCommand } from '../../src/canary/canary-command.js';
import { prometheus } from '../../src/canary/prometheus.js';
import { UsageError } from '../../src/usage-error.js';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The route as the production overlay applies it: the canary starts at 90/10. */
const ROUTE = kustomizeBuild(manifestsDir('overlays/production')).find((o) => o.kind === 'HTTPRoute');
const NS = 'ai-inference';

let prom: PrometheusStandIn | undefined;
afterEach(async () => {
  vi.unstubAllEnvs();
  await prom?.close();
  prom = undefined;
});

/** Runs the CLI as a child (asynchronously: the stand-in Prometheus answers from this process). */
function canary(k: KubectlStandIn, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  // promote's steps a millisecond apart, each judged on a window no longer than that (as promote requires).
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'canary', ...args, '--interval', '1ms', '--window', '1ms'], {
    cwd: ROOT,
    env: { ...process.env, ...k.env, PATH: `${k.dir}:${process.env.PATH ?? ''}`, PROMETHEUS_URL: prom?.url ?? '' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
}
const weights = (k: KubectlStandIn) => k.route().spec.rules[0]?.backendRefs.map((b) => b.weight);
/** The stand-in's route with the strong rule's two backendRefs replaced. */
const withStrongRefs = (k: KubectlStandIn, refs: (r: { name: string; weight?: number }[]) => Array<{ name: string; weight?: number }>) =>
  k.setRoute({ ...k.route(), spec: { ...k.route().spec, rules: k.route().spec.rules.map((r, i) => (i === 0 ? { ...r, backendRefs: refs(r.backendRefs) } : r)) } });
// kubectl's own request timeout is none unless set: every call sets it (--kubectl-timeout, 30s by default).
const GET = ['-n', NS, 'get', 'httproute', 'llm-tier-route', '-o', 'json', '--request-timeout=30s'];
const patchCall = (stable: number, canaryWeight: number) => [
  '-n',
  NS,
  'patch',
  'httproute',
  'llm-tier-route',
  '--type=json',
  '-p',
  JSON.stringify([
    { op: 'test', path: '/spec/rules/0/name', value: 'strong' },
    { op: 'test', path: '/spec/rules/0/backendRefs/0/name', value: 'llm-strong' },
    { op: 'test', path: '/spec/rules/0/backendRefs/1/name', value: 'llm-strong-canary' },
    { op: 'add', path: '/spec/rules/0/backendRefs/0/weight', value: stable },
    { op: 'add', path: '/spec/rules/0/backendRefs/1/weight', value: canaryWeight },
  ]),
  '--request-timeout=30s',
];
/**
 * Prometheus answers: the canary's 5xx share and p99 (ms), and both backends' 4xx share (the canary's, then the
 * stable's; by default the same as each other, so nothing over the stable's); null = no data.
 */
const healthy =
  (errorRate: number | null, p99Ms: number | null, clientErrors: { canary: number | null; stable: number | null } = { canary: 0.01, stable: 0.01 }) =>
  (q: string) =>
    q.startsWith('histogram_quantile') ? p99Ms : !q.includes('envoy_response_code_class="4"') ? errorRate : q.includes('_llm-strong-canary_') ? clientErrors.canary : clientErrors.stable;
/** The queries one judgement asks: the canary's 5xx share, p99 and 4xx share, and the stable's 4xx share. */
const PER_JUDGEMENT = 4;

describe('tiergate canary', () => {
  it('status reads the weights with one kubectl get', async () => {
    const k = kubectlStandIn(ROUTE);
    const r = await canary(k, ['status']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('llm-strong=90 llm-strong-canary=10 (canary 10%)');
    expect(k.calls()).toEqual([GET]);
  });

  it('set 50 patches both weights with guards on the rule and backend names', async () => {
    const k = kubectlStandIn(ROUTE);
    expect((await canary(k, ['set', '50'])).status).toBe(0);
    expect(k.calls()).toEqual([GET, patchCall(50, 50)]);
    expect(weights(k)).toEqual([50, 50]);
  });

  it('a route whose rules were reordered is refused by the guard, and nothing changes', async () => {
    const k = kubectlStandIn(ROUTE);
    const reordered = structuredClone(k.route());
    reordered.spec.rules.reverse();
    k.setRoute(reordered);
    const r = await canary(k, ['set', '50']);
    // The rule is found by name, so the patch addresses its new index; the guards hold it there.
    expect(r.status).toBe(0);
    expect(k.route().spec.rules[2]?.backendRefs.map((b) => b.weight)).toEqual([50, 50]);
    // A route whose strong rule lost its canary backend is refused before any patch is sent.
    const k2 = kubectlStandIn(ROUTE);
    const broken = structuredClone(k2.route());
    broken.spec.rules[0]?.backendRefs.pop();
    k2.setRoute(broken);
    const r2 = await canary(k2, ['set', '50']);
    expect(r2.status).toBe(1);
    expect(r2.stderr).toMatch(/must have exactly the backendRefs \[llm-strong, llm-strong-canary\]/);
    expect(k2.calls()).toEqual([GET]);
  });

  it('a route edited between our get and our patch: the guards make the API server refuse the patch', async () => {
    const k = kubectlStandIn(ROUTE);
    k.env.STANDIN_REORDER_AFTER_GET = '1';
    const r = await canary(k, ['set', '50']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/test failed at \/spec\/rules\/0\/name/);
    expect(k.calls()).toEqual([GET, patchCall(50, 50)]);
    // Nothing moved: the weak rule (now first) and the strong rule (now last) keep their weights.
    expect(k.route().spec.rules.map((r) => r.backendRefs.map((b) => b.weight))).toEqual([[undefined], [undefined], [90, 10]]);
  });

  it('--dry-run prints the patch and sends nothing', async () => {
    const k = kubectlStandIn(ROUTE);
    const r = await canary(k, ['set', '100', '--dry-run']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`dry run: kubectl -n ${NS} patch httproute llm-tier-route --type=json -p '${patchCall(0, 100).at(-2)}'`);
    expect(k.calls()).toEqual([GET]);
    expect(weights(k)).toEqual([90, 10]);
  });

  it('rollback sets the canary to 0', async () => {
    const k = kubectlStandIn(ROUTE);
    expect((await canary(k, ['rollback'])).status).toBe(0);
    expect(k.calls()).toEqual([GET, patchCall(100, 0)]);
  });

  it('rejects a bad percent as a usage error, before touching the cluster', async () => {
    const k = kubectlStandIn(ROUTE);
    const r = await canary(k, ['set', '150']);
    expect(r.status).toBe(2);
    expect(k.calls()).toEqual([]);
  });

  it('no action, or one that is none, is a usage error listing the actions, before touching the cluster', async () => {
    const k = kubectlStandIn(ROUTE);
    expect(await canary(k, [])).toMatchObject({ status: 2, stderr: 'tiergate canary: name an action: status, set PERCENT, promote, rollback or check\n' });
    expect(await canary(k, ['promte'])).toMatchObject({ status: 2, stderr: 'tiergate canary: unknown canary action "promte" (status, set PERCENT, promote, rollback or check)\n' });
    expect(k.calls()).toEqual([]);
  });

  it('promote walks 10 → 50 → 100, checking the canary in Prometheus after each step', async () => {
    prom = await prometheusStandIn(healthy(0.001, 2500));
    const k = kubectlStandIn(ROUTE);
    withStrongRefs(k, ([stable, can]) => [{ ...stable, name: 'llm-strong', weight: 100 }, { ...can, name: 'llm-strong-canary', weight: 0 }]);
    const r = await canary(k, ['promote']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n').filter(Boolean).slice(-2)).toEqual(['canary healthy at 100%', 'canary promoted: it takes all of the tier’s traffic']);
    expect(k.calls()).toEqual([GET, patchCall(90, 10), patchCall(50, 50), patchCall(0, 100)]);
    expect(weights(k)).toEqual([0, 100]);
    // One judgement before the first step (can Prometheus answer?) and one per step: the canary's 5xx share, p99
    // and 4xx share over its own Envoy cluster, and the stable's 4xx share over its own. The production overlay's
    // backendRefs name the model servers' namespace, llm-models, and kgateway's cluster name carries it.
    expect(prom.queries).toHaveLength(4 * PER_JUDGEMENT);
    const clusters = prom.queries.map((q) => /envoy_cluster_name=~"([^"]+)"/.exec(q)?.[1]);
    const [canaryCluster, stableCluster] = ['kube_llm-models_llm-strong-canary_[0-9]+', 'kube_llm-models_llm-strong_[0-9]+'];
    expect(clusters).toEqual(Array(4).fill([canaryCluster, canaryCluster, canaryCluster, stableCluster]).flat());
    expect(prom.queries[0]).toContain('envoy_response_code_class="5"');
    expect(prom.queries[1]).toMatch(/^histogram_quantile\(0\.99, /);
    expect(prom.queries[2]).toContain('envoy_response_code_class="4"');
    expect(prom.queries[3]).toContain('envoy_response_code_class="4"');
  });

  /** Answers as `first` for the judgement asked before any step, then as `then`. */
  const beforeAndAfter = (first: (q: string) => number | null, then: (q: string) => number | null) => {
    let n = 0;
    return (q: string) => (++n <= PER_JUDGEMENT ? first(q) : then(q));
  };
  const down = () => {
    throw new Error('down');
  };

  // Each step it cannot show healthy is rolled back: over a threshold, or (before, the error ended promote with
  // the canary left at 50% and nothing judging it) a Prometheus that stops answering.
  it.each([
    ['an unhealthy step (p99 over 15 s)', beforeAndAfter(healthy(null, null), healthy(0.001, 16_000)), 'p99 16000 ms > 15000 ms; rolling back'],
    ['a Prometheus that stops answering, as without data', beforeAndAfter(healthy(0.001, 2500), down), 'its health could not be read (prometheus: HTTP 503'],
  ] as const)('promote from 10% continues at 50; %s: rolled back, exit 1', async (_name, answer, why) => {
    prom = await prometheusStandIn(answer);
    const k = kubectlStandIn(ROUTE);
    const r = await canary(k, ['promote']);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain(`canary unhealthy at 50%: ${why}`);
    expect(k.calls()).toEqual([GET, patchCall(50, 50), patchCall(100, 0)]);
    expect(weights(k)).toEqual([100, 0]);
  });

  // Before, a Prometheus that could not answer (a mistyped host) was found only after the first step's interval,
  // and that step was rolled back: the canary's traffic pulled off by a typo.
  it('promote asks Prometheus before it moves a weight: one that cannot answer stops it with nothing changed', async () => {
    prom = await prometheusStandIn(down);
    const k = kubectlStandIn(ROUTE);
    const r = await canary(k, ['promote']);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe("tiergate canary: the canary's health cannot be read, so nothing was changed: prometheus: HTTP 503 for " + prom.queries[0] + '\n');
    expect(k.calls()).toEqual([GET]);
    expect(weights(k)).toEqual([90, 10]);
  });

  it('a canary already serving over a threshold is rolled back, not promoted; one with no data yet is stepped', async () => {
    prom = await prometheusStandIn(healthy(0.05, 3000));
    const k = kubectlStandIn(ROUTE);
    const r = await canary(k, ['promote']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('canary unhealthy at 10% before promotion: 5xx rate 5.00% > 2.00%; rolling back\ncanary set to 0% (llm-strong=100 llm-strong-canary=0)\n');
    expect(k.calls()).toEqual([GET, patchCall(100, 0)]);
    // At 10% with no traffic data yet: nothing to judge before, so the first step is taken and judged after it.
    await prom.close();
    prom = await prometheusStandIn(beforeAndAfter(healthy(null, null), healthy(0.001, 2500)));
    const fresh = kubectlStandIn(ROUTE);
    expect((await canary(fresh, ['promote'])).status).toBe(0);
    expect(fresh.calls()).toEqual([GET, patchCall(50, 50), patchCall(0, 100)]);
  });

  it('promote without traffic data does not go on: no data is not proof of health', async () => {
    prom = await prometheusStandIn(healthy(null, null));
    const k = kubectlStandIn(ROUTE);
    expect((await canary(k, ['promote'])).status).toBe(1);
    expect(weights(k)).toEqual([100, 0]);
  });

  it('a kubectl that never answers is stopped: --kubectl-timeout is passed on as --request-timeout, and the command fails', async () => {
    const k = kubectlStandIn(ROUTE);
    k.env.STANDIN_HANG = '1';
    const r = await canary(k, ['status', '--kubectl-timeout', '1s']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('kubectl -n ai-inference get httproute did not finish within 2 s and was stopped');
    expect(k.calls()).toEqual([['-n', NS, 'get', 'httproute', 'llm-tier-route', '-o', 'json', '--request-timeout=1s']]);
  });

  it.each([
    ['', 'nothing'],
    ['Switched to context "prod".\n', '"Switched to context \\"prod\\"."'],
  ])('a kubectl that succeeds without printing the route (%j) is a failure saying what it printed (it was "Unexpected end of JSON input")', async (printed, shown) => {
    const k = kubectlStandIn(ROUTE);
    k.env.STANDIN_GET_PRINTS = printed;
    const r = await canary(k, ['status']);
    expect([r.status, r.stderr]).toEqual([1, `tiergate canary: kubectl -n ${NS} get httproute llm-tier-route -o json printed ${shown}, not the route as JSON\n`]);
  });

  it.each([
    ['a healthy canary is left alone', healthy(0.01, 3000), 0, [90, 10]],
    ['5xx over 2% rolls back', healthy(0.05, 3000), 1, [100, 0]],
    ['p99 over 15 s rolls back', healthy(0.001, 20_000), 1, [100, 0]],
    ['no traffic in the window: nothing to judge', healthy(null, null), 0, [90, 10]],
    // A canary that refuses what the stable serves (a model name it does not serve: vLLM's 404) fails no request
    // with a 5xx, and its upstream times are fast.
    ['4xx far over the stable’s rolls back', healthy(0, 40, { canary: 1, stable: 0.01 }), 1, [100, 0]],
    ['4xx as common as the stable’s (the clients’ own mistakes) is left alone', healthy(0.001, 3000, { canary: 0.3, stable: 0.28 }), 0, [90, 10]],
    ['4xx with no stable traffic to hold them to is left alone', healthy(0.001, 3000, { canary: 0.5, stable: null }), 0, [90, 10]],
  ] as const)('check (the CronJob): %s', async (_, answer, status, after) => {
    prom = await prometheusStandIn(answer);
    const k = kubectlStandIn(ROUTE);
    expect((await canary(k, ['check'])).status).toBe(status);
    expect(weights(k)).toEqual(after);
    if (status === 1) expect(k.calls()).toEqual([GET, patchCall(100, 0)]);
  });

  it('check and promote name the 4xx share and the stable’s; --max-4xx-excess moves the bound, exactly at it passes', async () => {
    prom = await prometheusStandIn(healthy(0, 40, { canary: 1, stable: 0.01 }));
    const k = kubectlStandIn(ROUTE);
    const checked = await canary(k, ['check']);
    expect([checked.status, checked.stdout]).toEqual([1, "canary unhealthy: 4xx rate 100.00%, 99.00% over the stable's 1.00% (> 5.00%); rolling back\ncanary set to 0% (llm-strong=100 llm-strong-canary=0)\n"]);
    await prom.close();
    prom = await prometheusStandIn(beforeAndAfter(healthy(0.001, 2500), healthy(0, 40, { canary: 1, stable: 0.5 })));
    const promoted = await canary(kubectlStandIn(ROUTE), ['promote', '--max-4xx-excess', '0.4']);
    expect([promoted.status, promoted.stdout]).toEqual([
      1,
      "canary set to 50% (llm-strong=50 llm-strong-canary=50)\ncanary unhealthy at 50%: 4xx rate 100.00%, 50.00% over the stable's 50.00% (> 40.00%); rolling back\ncanary set to 0% (llm-strong=100 llm-strong-canary=0)\n",
    ]);
    await prom.close();
    prom = await prometheusStandIn(healthy(0, 40, { canary: 1, stable: 0.5 }));
    expect((await canary(kubectlStandIn(ROUTE), ['check', '--max-4xx-excess', '0.5'])).stdout).toBe('canary healthy\n');
  });

  it('check judges the canary in its backendRef’s namespace, or the route’s when the ref names none', async () => {
    prom = await prometheusStandIn(healthy(0.01, 3000));
    const k = kubectlStandIn(ROUTE);
    expect((await canary(k, ['check'])).status).toBe(0);
    withStrongRefs(k, (refs) => refs.map(({ namespace: _, ...ref }: { name: string; namespace?: string; weight?: number }) => ref));
    expect((await canary(k, ['check'])).status).toBe(0);
    const clusters = prom.queries.map((q) => /envoy_cluster_name=~"([^"]+)"/.exec(q)?.[1]);
    const judgement = (ns: string) => [...Array(3).fill(`kube_${ns}_llm-strong-canary_[0-9]+`), `kube_${ns}_llm-strong_[0-9]+`];
    expect(clusters).toEqual([...judgement('llm-models'), ...judgement(NS)]);
  });

  it('backendRefs that leave weight to its default (1 each, 50%): read as such, and set writes both weights', async () => {
    const k = kubectlStandIn(ROUTE);
    withStrongRefs(k, (refs) => refs.map(({ weight: _dropped, ...ref }) => ref));
    expect(k.route().spec.rules[0]?.backendRefs.every((b) => !('weight' in b))).toBe(true);
    expect((await canary(k, ['status'])).stdout).toContain('llm-strong=1 llm-strong-canary=1 (canary 50%)');
    // A JSON Patch `replace` of a member that is not there is refused by the API server (and the stand-in).
    const r = await canary(k, ['set', '10']);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(weights(k)).toEqual([90, 10]);
  });

  it('weights set by hand that make no whole percent: shown as they are, judged by check, promoted all the way', async () => {
    // 999/1: a canary with a tenth of a percent of the traffic is still a canary with traffic.
    prom = await prometheusStandIn(healthy(0.5, 3000));
    const k = kubectlStandIn(ROUTE);
    withStrongRefs(k, ([stable, can]) => [{ ...stable, name: 'llm-strong', weight: 999 }, { ...can, name: 'llm-strong-canary', weight: 1 }]);
    expect((await canary(k, ['status'])).stdout).toContain('llm-strong=999 llm-strong-canary=1 (canary 0.1%)');
    const checked = await canary(k, ['check']);
    expect(checked.stdout).toContain('canary unhealthy: 5xx rate 50.00% > 2.00%; rolling back');
    expect([checked.status, weights(k)]).toEqual([1, [100, 0]]);
    // 1/999: 99.9% is not all of the traffic; promote takes the last step and judges it.
    await prom.close();
    prom = await prometheusStandIn(healthy(0.001, 2500));
    const k2 = kubectlStandIn(ROUTE);
    withStrongRefs(k2, ([stable, can]) => [{ ...stable, name: 'llm-strong', weight: 1 }, { ...can, name: 'llm-strong-canary', weight: 999 }]);
    const promoted = await canary(k2, ['promote']);
    expect(promoted.status).toBe(0);
    expect(k2.calls()).toEqual([GET, patchCall(0, 100)]);
    expect(promoted.stdout).toContain('canary healthy at 100%');
    // One judgement before the step (Prometheus can answer, and 99.9% is healthy), one after it.
    expect(prom.queries).toHaveLength(2 * PER_JUDGEMENT);
  });

  it('check on a canary at 0% does not even ask Prometheus', async () => {
    prom = await prometheusStandIn(healthy(1, 1));
    const k = kubectlStandIn(ROUTE);
    await canary(k, ['rollback']);
    expect((await canary(k, ['check'])).status).toBe(0);
    expect(prom.queries).toEqual([]);
  });

  // Envoy counts a request that was reset, refused or timed out as a 5xx but records an upstream time only for a
  // response that completed: a canary whose pods accept nothing has a 5xx share of 100% and no p99. Before, the
  // two were judged together, that read as "no traffic data", and check left the canary serving while promote
  // took it from 10% to 50% before judging it.
  it('a canary that answers nothing (5xx 100%, no p99 at all) is rolled back by check and by promote before any step', async () => {
    prom = await prometheusStandIn(healthy(1, null));
    const k = kubectlStandIn(ROUTE);
    const checked = await canary(k, ['check']);
    expect([checked.status, checked.stdout]).toEqual([1, 'canary unhealthy: 5xx rate 100.00% > 2.00%; rolling back\ncanary set to 0% (llm-strong=100 llm-strong-canary=0)\n']);
    const k2 = kubectlStandIn(ROUTE);
    const promoted = await canary(k2, ['promote']);
    expect(promoted.status).toBe(1);
    expect(promoted.stdout).toContain('canary unhealthy at 10% before promotion: 5xx rate 100.00% > 2.00%; rolling back');
    expect(k2.calls()).toEqual([GET, patchCall(100, 0)]);
  });

  // One measure without data is no proof of health; NaN from Prometheus (a share of no requests, a quantile of empty
  // buckets) is no data, not a pass. check leaves the canary; promote takes the step, judges it by that and rolls back.
  it.each([
    ['no p99 (none of its requests completed)', healthy(0.001, null), 'no latency data for the canary in the window (none of its requests completed)'],
    ['NaN for both', healthy(NaN, NaN), 'no traffic data for the canary in the window'],
  ] as const)('data missing, %s: check leaves it, promote rolls the step back', async (_name, answer, missing) => {
    prom = await prometheusStandIn(answer);
    const k = kubectlStandIn(ROUTE);
    const checked = await canary(k, ['check']);
    expect([checked.status, checked.stdout]).toEqual([0, `${missing}: nothing to judge\n`]);
    const promoted = await canary(k, ['promote']);
    expect(promoted.status).toBe(1);
    expect(promoted.stdout).toContain(`canary unhealthy at 50%: ${missing}; rolling back`);
    expect(k.calls()).toEqual([GET, GET, patchCall(50, 50), patchCall(100, 0)]);
  });

  it('a canary exactly at a threshold passes: the thresholds are the most that is allowed', async () => {
    prom = await prometheusStandIn(healthy(0.02, 15_000));
    const k = kubectlStandIn(ROUTE);
    const checked = await canary(k, ['check']);
    expect([checked.status, checked.stdout]).toEqual([0, 'canary healthy\n']);
  });

  it('promote on a canary already at 100% changes nothing and asks Prometheus nothing', async () => {
    prom = await prometheusStandIn(down);
    const k = kubectlStandIn(ROUTE);
    withStrongRefs(k, ([stable, can]) => [{ ...stable, name: 'llm-strong', weight: 0 }, { ...can, name: 'llm-strong-canary', weight: 100 }]);
    const r = await canary(k, ['promote']);
    expect([r.status, r.stdout, r.stderr]).toEqual([0, 'canary promoted: it takes all of the tier’s traffic\n', '']);
    expect([k.calls(), prom.queries]).toEqual([[GET], []]);
  });

  it('promote --dry-run prints each step and neither patches nor waits to judge one', async () => {
    prom = await prometheusStandIn(healthy(0.001, 2500));
    const k = kubectlStandIn(ROUTE);
    const r = await canary(k, ['promote', '--dry-run']);
    expect(r.status).toBe(0);
    const dry = r.stdout.split('\n').filter((l) => l.startsWith('dry run: '));
    expect(dry.map((l) => JSON.parse(/-p '(.*)'$/.exec(l)?.[1] ?? 'null').slice(-2).map((op: { value: number }) => op.value))).toEqual([
      [50, 50],
      [0, 100],
    ]);
    // Asked once whether it can be promoted at all; no step is judged, as none was taken.
    expect([k.calls(), prom.queries.length]).toEqual([[GET], PER_JUDGEMENT]);
  });

  it('promote from 0% is not held back by errors an earlier canary left in the window: it steps, then judges', async () => {
    prom = await prometheusStandIn(beforeAndAfter(healthy(0.5, 3000), healthy(0.001, 2500)));
    const k = kubectlStandIn(ROUTE);
    withStrongRefs(k, ([stable, can]) => [{ ...stable, name: 'llm-strong', weight: 100 }, { ...can, name: 'llm-strong-canary', weight: 0 }]);
    expect((await canary(k, ['promote'])).status).toBe(0);
    expect(k.calls()).toEqual([GET, patchCall(90, 10), patchCall(50, 50), patchCall(0, 100)]);
  });

  it('a rule with a third backendRef is refused: set and promote would leave it its share', async () => {
    const k = kubectlStandIn(ROUTE);
    withStrongRefs(k, (refs) => [...refs, { name: 'llm-strong-shadow', weight: 5 }]);
    const r = await canary(k, ['set', '50']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('rule "strong" must have exactly the backendRefs [llm-strong, llm-strong-canary], found [llm-strong, llm-strong-canary, llm-strong-shadow]');
    expect(k.calls()).toEqual([GET]);
  });

  it('both weights 0 is a canary at 0%: shown so, and check asks nothing', async () => {
    prom = await prometheusStandIn(healthy(1, 1));
    const k = kubectlStandIn(ROUTE);
    withStrongRefs(k, ([stable, can]) => [{ ...stable, name: 'llm-strong', weight: 0 }, { ...can, name: 'llm-strong-canary', weight: 0 }]);
    expect((await canary(k, ['status'])).stdout).toContain('llm-strong=0 llm-strong-canary=0 (canary 0%)');
    expect((await canary(k, ['check'])).stdout).toBe('canary at 0%: nothing to check\n');
    expect(prom.queries).toEqual([]);
  });
});

describe('tiergate canary flags (in process)', () => {
  // "abc" as a threshold was NaN, and no rate is greater than NaN: every canary judged healthy, none rolled back.
  it.each([
    ['--max-error-rate', 'abc'],
    ['--max-error-rate', ''],
    ['--max-error-rate', '2'], // 2%, meant: the flag is a share
    ['--max-error-rate', '-0.1'],
    ['--max-4xx-excess', '5'],
    ['--max-4xx-excess', 'x'],
    ['--max-p99-ms', '15s'],
    ['--max-p99-ms', 'Infinity'],
    ['--window', '0m'],
    // A duration is all of the value: "1.5h" was read as its "5h", and "5min" as 5 minutes (then refused by PromQL).
    ['--window', '5min'],
    ['--interval', '1.5h'],
  ])('%s %j is a usage error, before the cluster is touched', async (flag, value) => {
    const k = kubectlStandIn(ROUTE);
    const lines: string[] = [];
    // One argument, flag=value, so that parseArgs reads "-0.1" as the value and not as another option.
    const run = canaryCommand(['check', `${flag}=${value}`, '--kubectl', `${k.dir}/kubectl`, '--prometheus', 'http://127.0.0.1:9'], (l) => lines.push(l), {});
    await expect(run).rejects.toThrow(UsageError);
    await expect(run).rejects.toThrow(flag);
    expect([k.calls(), lines]).toEqual([[], []]);
  });

  it('promote with an --interval shorter than its --window is a usage error: a step would be judged on traffic from before it', async () => {
    prom = await prometheusStandIn(healthy(0.001, 2500));
    const k = kubectlStandIn(ROUTE);
    const lines: string[] = [];
    const run = canaryCommand(['promote', '--interval=1m', '--window=5m', '--kubectl', `${k.dir}/kubectl`, '--prometheus', prom.url], (l) => lines.push(l), {});
    await expect(run).rejects.toThrow(UsageError);
    await expect(run).rejects.toThrow('--interval 1m is shorter than --window 5m');
    expect([k.calls(), prom.queries, lines]).toEqual([[], [], []]);
  });

  // `prometheus:9090` is a URL of the scheme "prometheus:": fetch refused it only when the first step was judged.
  it.each([
    [['--prometheus', 'prometheus:9090'], {}, '--prometheus expects an http:// or https:// URL, got "prometheus:9090"'],
    [['--prometheus', ''], {}, '--prometheus expects an http:// or https:// URL, got ""'],
    [[], { PROMETHEUS_URL: 'prometheus.monitoring:9090' }, 'PROMETHEUS_URL expects an http:// or https:// URL, got "prometheus.monitoring:9090"'],
    [[], {}, '--prometheus URL (or PROMETHEUS_URL) is required to judge the canary'],
    [[], { PROMETHEUS_URL: '' }, '--prometheus URL (or PROMETHEUS_URL) is required to judge the canary'],
  ])('promote %j with %j is a usage error, before the cluster is touched', async (args, env, message) => {
    const k = kubectlStandIn(ROUTE);
    const lines: string[] = [];
    const run = canaryCommand(['promote', ...args, '--kubectl', `${k.dir}/kubectl`], (l) => lines.push(l), env);
    await expect(run).rejects.toThrow(UsageError);
    await expect(run).rejects.toThrow(message);
    expect([k.calls(), lines]).toEqual([[], []]);
  });

  // An empty percent (`tiergate canary set "$PERCENT"` with the variable unset) was Number("") = 0: a rollback.
  it.each([[['set', '']], [['set']], [['set', '10%']], [['set', '12.5']]])('%j is a usage error, and the route is not touched', async (args) => {
    const k = kubectlStandIn(ROUTE);
    await expect(canaryCommand([...args, '--kubectl', `${k.dir}/kubectl`], () => undefined, {})).rejects.toThrow(UsageError);
    expect(k.calls()).toEqual([]);
  });

  it('the edges of what they take are taken', async () => {
    const k = kubectlStandIn(ROUTE);
    // The stand-in reads its state files from the environment kubectl inherits.
    for (const [name, value] of Object.entries(k.env)) vi.stubEnv(name, value);
    const lines: string[] = [];
    // The last: an interval shorter than the window is promote's concern alone (check runs from a CronJob).
    const edges = [['--max-error-rate', '0'], ['--max-error-rate', '1'], ['--max-4xx-excess', '0'], ['--max-4xx-excess', '1'], ['--max-p99-ms', '0'], ['--window', '30s'], ['--interval', '1m', '--window', '10m']];
    for (const args of edges) {
      expect(await canaryCommand(['status', ...args, '--kubectl', `${k.dir}/kubectl`], (l) => lines.push(l), {}), args.join(' ')).toBe(0);
    }
    expect(lines).toHaveLength(edges.length);
    expect(k.calls()).toHaveLength(edges.length);
  });
});

describe('the Prometheus client (in process)', () => {
  /** A server that answers every request with `status` and `body` (or never, with `hang`). */
  async function answering(status: number, body: string, hang = false): Promise<{ url: string; paths: string[]; close(): Promise<void> }> {
    const paths: string[] = [];
    const server = createServer((req, res) => {
      paths.push(new URL(req.url ?? '/', 'http://x').pathname);
      if (!hang) res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const { port } = server.address() as { port: number };
    return {
      url: `http://127.0.0.1:${port}`,
      paths,
      close: () => {
        server.closeAllConnections();
        return new Promise((r) => server.close(() => r()));
      },
    };
  }
  const canaryBackend = { namespace: 'llm-models', name: 'llm-strong-canary' };
  const stableBackend = { namespace: 'llm-models', name: 'llm-strong' };

  it('a base URL with a trailing slash queries /api/v1/query, not //api/v1/query', async () => {
    const s = await answering(200, JSON.stringify({ status: 'success', data: { result: [{ value: [1, '0.25'] }] } }));
    try {
      expect(await prometheus(`${s.url}/`).health(canaryBackend, stableBackend, '5m')).toEqual({ errorRate: 0.25, p99Ms: 0.25, clientErrorRate: 0.25, stableClientErrorRate: 0.25 });
      expect(s.paths).toEqual(['/api/v1/query', '/api/v1/query', '/api/v1/query', '/api/v1/query']);
    } finally {
      await s.close();
    }
  });

  // What the operator reads after "the canary's health cannot be read": before, "fetch failed" or a JSON parser's
  // complaint, never Prometheus' own reason.
  it.each([
    [400, JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'invalid parameter "query": 1:2: parse error' }), /^prometheus: HTTP 400: bad_data: invalid parameter "query": 1:2: parse error for \(sum/],
    [200, JSON.stringify({ status: 'error', errorType: 'timeout', error: 'query timed out in expression evaluation' }), /^prometheus: query failed: timeout: query timed out in expression evaluation for \(sum/],
    [200, '<!doctype html><title>Grafana</title>', /^prometheus: the answer from http:\/\/127\.0\.0\.1:\d+ is not JSON \(is it Prometheus' address\?\) for \(sum/],
    [503, 'upstream connect error', /^prometheus: HTTP 503 for \(sum/],
  ])('HTTP %i %s: says why', async (status, body, message) => {
    const s = await answering(status, body);
    try {
      await expect(prometheus(s.url).health(canaryBackend, stableBackend, '5m')).rejects.toThrow(message);
    } finally {
      await s.close();
    }
  });

  it('a Prometheus that cannot be reached, or never answers, is named with the reason', async () => {
    const gone = await answering(200, '');
    await gone.close(); // a port nothing listens on
    await expect(prometheus(gone.url).health(canaryBackend, stableBackend, '5m')).rejects.toThrow(`prometheus: ${gone.url} cannot be queried: connect ECONNREFUSED ${gone.url.slice('http://'.length)}`);
    const s = await answering(200, '', true);
    try {
      await expect(prometheus(s.url, { timeoutMs: 200 }).health(canaryBackend, stableBackend, '5m')).rejects.toThrow(`prometheus: ${s.url} cannot be queried: no answer within 0.2 s`);
    } finally {
      await s.close();
    }
  });
});
