// The only way the canary commands touch the cluster: `kubectl get` and `kubectl patch --type=json`.
import { execFile } from 'node:child_process';
import type { CanaryTarget, JsonPatchOp } from './route-weights.js';

export interface Kubectl {
  getRoute(t: CanaryTarget): Promise<unknown>;
  patchRoute(t: CanaryTarget, patch: JsonPatchOp[]): Promise<void>;
}

/**
 * `timeoutMs` bounds each call. kubectl's own `--request-timeout` is 0 (none) unless set: an API server that
 * accepts the connection and never answers held `promote` or the CronJob's `check` until something killed it.
 * It is passed on, and the process is killed up to five seconds after it, in case kubectl itself hangs (an
 * auth plugin, a slow DNS).
 */
export function kubectl(binary = 'kubectl', timeoutMs = 30_000): Kubectl {
  const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
  const killAfter = seconds + Math.min(5, seconds);
  const run = (args: string[]) =>
    new Promise<string>((resolve, reject) => {
      const argv = [...args, `--request-timeout=${seconds}s`];
      execFile(binary, argv, { maxBuffer: 16 * 1024 * 1024, timeout: killAfter * 1000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
        const what = `kubectl ${args.slice(0, 4).join(' ')}`;
        if (err && err.killed) reject(new Error(`${what} did not finish within ${killAfter} s and was stopped`));
        else if (err) reject(new Error(`${what} failed: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      });
    });
  return {
    async getRoute(t) {
      const out = await run(['-n', t.namespace, 'get', 'httproute', t.route, '-o', 'json']);
      try {
        return JSON.parse(out) as unknown;
      } catch {
        // A wrapper or plugin in kubectl's place that printed nothing, or text: JSON.parse's "Unexpected end of
        // JSON input" alone did not say which command had answered what.
        const shown = out.trim() === '' ? 'nothing' : JSON.stringify(out.trim().slice(0, 120));
        throw new Error(`kubectl -n ${t.namespace} get httproute ${t.route} -o json printed ${shown}, not the route as JSON`);
      }
    },
    async patchRoute(t, patch) {
      await run(['-n', t.namespace, 'patch', 'httproute', t.route, '--type=json', '-p', JSON.stringify(patch)]);
    },
  };
}
