// The only way the canary commands touch the cluster: `kubectl get` and `kubectl patch --type=json`.
import { execFile } from 'node:child_process';
import type { CanaryTarget, JsonPatchOp } from './route-weights.js';

export interface Kubectl {
  getRoute(t: CanaryTarget): Promise<unknown>;
  patchRoute(t: CanaryTarget, patch: JsonPatchOp[]): Promise<void>;
}

export function kubectl(binary = 'kubectl'): Kubectl {
  const run = (args: string[]) =>
    new Promise<string>((resolve, reject) => {
      execFile(binary, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`kubectl ${args.slice(0, 4).join(' ')} failed: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      });
    });
  return {
    async getRoute(t) {
      return JSON.parse(await run(['-n', t.namespace, 'get', 'httproute', t.route, '-o', 'json'])) as unknown;
    },
    async patchRoute(t, patch) {
      await run(['-n', t.namespace, 'patch', 'httproute', t.route, '--type=json', '-p', JSON.stringify(patch)]);
    },
  };
}
