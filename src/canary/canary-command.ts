// Argument parsing and wiring for `tiergate canary`.
import { numberArg, numberFlag, parseFlags, UsageError } from '../usage-error.js';
import { Canary } from './canary.js';
import { kubectl } from './kubectl.js';
import { prometheus } from './prometheus.js';

export const CANARY_USAGE = `  tiergate canary (status | set PERCENT | promote | rollback | check) [--namespace NS] [--route NAME]
      [--rule strong] [--stable llm-strong] [--canary llm-strong-canary] [--prometheus URL] [--interval 5m]
      [--window 5m] [--max-error-rate 0.02] [--max-4xx-excess 0.05] [--max-p99-ms 15000] [--kubectl PATH]
      [--kubectl-timeout 30s] [--dry-run]
`;

export { UsageError };

/** Go-style "90s", "5m", "1h" → ms; the whole value, so "1.5h" is not read as its "5h". */
function durationMs(flag: string, s: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(s);
  if (!m) throw new UsageError(`--${flag} expects a duration like 30s, 5m or 1h, got "${s}"`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}

/** A duration that PromQL's range selector takes: not zero. */
function windowOf(s: string): string {
  if (durationMs('window', s) === 0) throw new UsageError(`--window must be longer than 0, got "${s}"`);
  return s;
}

const OPTIONS = {
  namespace: { type: 'string', default: 'ai-inference' },
  route: { type: 'string', default: 'llm-tier-route' },
  rule: { type: 'string', default: 'strong' },
  stable: { type: 'string', default: 'llm-strong' },
  canary: { type: 'string', default: 'llm-strong-canary' },
  prometheus: { type: 'string' },
  interval: { type: 'string', default: '5m' },
  window: { type: 'string', default: '5m' },
  'max-error-rate': { type: 'string', default: '0.02' },
  'max-4xx-excess': { type: 'string', default: '0.05' },
  'max-p99-ms': { type: 'string', default: '15000' },
  kubectl: { type: 'string', default: 'kubectl' },
  'kubectl-timeout': { type: 'string', default: '30s' },
  'dry-run': { type: 'boolean', default: false },
} as const;

function parse(args: string[]) {
  return parseFlags({ args, allowPositionals: true, options: OPTIONS });
}

/**
 * The Prometheus base URL, from the flag or else the environment (an empty variable is none). Anything but an
 * http(s) URL is a usage error: `--prometheus prometheus:9090` parses as a URL of the scheme "prometheus:", and
 * fetch refused it only when the first step was judged, after that step's interval.
 */
function prometheusUrl(flag: string | undefined, fromEnv: string | undefined): string | undefined {
  const [value, name] = flag !== undefined ? [flag, '--prometheus'] : [fromEnv || undefined, 'PROMETHEUS_URL'];
  if (value === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url?.protocol !== 'http:' && url?.protocol !== 'https:') throw new UsageError(`${name} expects an http:// or https:// URL, got "${value}"`);
  return value;
}

export async function canaryCommand(args: string[], out: (s: string) => void, env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parse(args);
  const [action, arg] = positionals;
  const window = windowOf(values.window); // validated here, used by Prometheus as written
  // Before any call to the cluster: a bad flag is a usage error (exit 2), not a judgement.
  const maxErrorRate = numberFlag('max-error-rate', values['max-error-rate'], { min: 0, max: 1, expects: 'a share from 0 to 1 (0.02 is 2%)' });
  const maxClientErrorExcess = numberFlag('max-4xx-excess', values['max-4xx-excess'], { min: 0, max: 1, expects: "a share from 0 to 1 (0.05: the canary's 4xx share at most 5 points over the stable's)" });
  const maxP99Ms = numberFlag('max-p99-ms', values['max-p99-ms'], { min: 0, max: Number.MAX_SAFE_INTEGER, expects: 'a number of milliseconds' });
  const promUrl = prometheusUrl(values.prometheus, env.PROMETHEUS_URL);
  const intervalMs = durationMs('interval', values.interval);
  // Each step is judged on the window that ends when its interval does: a longer window reaches back before the
  // step, to the share before it, and at the first step to whatever an earlier canary left (one rolled back
  // minutes ago), which would roll this one back for that one's errors.
  if (action === 'promote' && intervalMs < durationMs('window', window)) {
    throw new UsageError(`--interval ${values.interval} is shorter than --window ${window}: each step would be judged partly on traffic from before it; give --window at most the --interval`);
  }
  const canary = new Canary(
    {
      kubectl: kubectl(values.kubectl, durationMs('kubectl-timeout', values['kubectl-timeout'])),
      prometheus: promUrl ? prometheus(promUrl) : undefined,
      out,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    },
    {
      target: { namespace: values.namespace, route: values.route, rule: values.rule, stable: values.stable, canary: values.canary },
      dryRun: values['dry-run'],
      intervalMs,
      window,
      maxErrorRate,
      maxClientErrorExcess,
      maxP99Ms,
    },
  );
  switch (action) {
    case 'status':
      await canary.status();
      return 0;
    case 'set': {
      const percent = numberArg('canary set PERCENT', arg ?? '', { min: 0, max: 100, integer: true, expects: 'a whole percent, 0 to 100' });
      await canary.set(percent);
      return 0;
    }
    case 'rollback':
      await canary.rollback();
      return 0;
    case 'promote':
      return (await canary.promote()) ? 0 : 1;
    case 'check':
      // A rollback exits 1, so the CronJob's failed run is visible (and alertable) too.
      return (await canary.check()) === 'rolled-back' ? 1 : 0;
    default:
      // No action at all is the likelier mistake: it was reported as an unknown action named "".
      if (!action) throw new UsageError('name an action: status, set PERCENT, promote, rollback or check');
      throw new UsageError(`unknown canary action "${action}" (status, set PERCENT, promote, rollback or check)`);
  }
}
