// Stand-ins for the tools the canary commands drive, so tests can assert every call exactly:
// - a `kubectl` executable placed first on PATH that serves one HTTPRoute from a state file, applies
//   `patch --type=json` documents to it the way the API server does (a failing `test` op, or a `replace` of a
//   member that is not there, rejects the whole patch), and records its argv;
// - a Prometheus HTTP API that answers /api/v1/query from a function and records the queries.
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// CommonJS, run by plain `node`; the package.json beside it says so (see kubectlStandIn).
const KUBECTL = `#!/usr/bin/env node
const fs = require('node:fs');
const args = process.argv.slice(2);
fs.appendFileSync(process.env.STANDIN_LOG, JSON.stringify(args) + '\\n');
const state = () => JSON.parse(fs.readFileSync(process.env.STANDIN_ROUTE, 'utf8'));
const pointer = (doc, path) => {
  const keys = path.split('/').slice(1).map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
  const last = keys.pop();
  let parent = doc;
  for (const k of keys) { parent = parent?.[k]; }
  return { parent, last };
};
const verb = args[2];
// An API server that takes the connection and never answers, and a kubectl that does not give up on it.
if (process.env.STANDIN_HANG === '1') setInterval(() => undefined, 60_000);
// A wrapper in kubectl's place that succeeds and prints this instead of the route.
else if (verb === 'get' && process.env.STANDIN_GET_PRINTS !== undefined) { process.stdout.write(process.env.STANDIN_GET_PRINTS); process.exit(0); }
else if (verb === 'get') {
  const doc = state();
  process.stdout.write(JSON.stringify(doc));
  // Someone else edits the route right after we read it: its rules come back in reverse order.
  if (process.env.STANDIN_REORDER_AFTER_GET === '1') { doc.spec.rules.reverse(); fs.writeFileSync(process.env.STANDIN_ROUTE, JSON.stringify(doc)); }
  process.exit(0);
}
else if (verb === 'patch') {
  const doc = state();
  const ops = JSON.parse(args[args.indexOf('-p') + 1]);
  for (const op of ops) {
    const { parent, last } = pointer(doc, op.path);
    if (parent === undefined || parent === null) { process.stderr.write('The request is invalid: path not found ' + op.path + '\\n'); process.exit(1); }
    if (op.op === 'test' && JSON.stringify(parent[last]) !== JSON.stringify(op.value)) {
      process.stderr.write('The request is invalid: the server rejected our request due to an error in our request (test failed at ' + op.path + ')\\n');
      process.exit(1);
    }
    // The API server's JSON Patch: replace needs the member to be there (RFC 6902 §4.3), add sets it either way.
    if (op.op === 'replace' && !Object.prototype.hasOwnProperty.call(parent, last)) {
      process.stderr.write('The request is invalid: replace operation does not apply: doc is missing key: ' + op.path + '\\n');
      process.exit(1);
    }
    if (op.op === 'replace' || op.op === 'add') parent[last] = op.value;
  }
  fs.writeFileSync(process.env.STANDIN_ROUTE, JSON.stringify(doc));
  process.stdout.write('httproute.gateway.networking.k8s.io/' + args[4] + ' patched\\n');
  process.exit(0);
}
else {
  process.stderr.write('stand-in kubectl: unsupported ' + args.join(' ') + '\\n');
  process.exit(1);
}
`;

export interface KubectlStandIn {
  /** Prepend to PATH. */
  dir: string;
  env: Record<string, string>;
  calls(): string[][];
  route(): { spec: { rules: Array<{ name: string; backendRefs: Array<{ name: string; weight?: number }> }> } };
  setRoute(route: unknown): void;
}

export function kubectlStandIn(route: unknown): KubectlStandIn {
  const dir = mkdtempSync(join(tmpdir(), 'tiergate-standin-'));
  const bin = join(dir, 'kubectl');
  // Node reads an extensionless script by the nearest package.json's "type": without one here, a package.json
  // with "type": "module" anywhere above the temp directory made the stand-in an ES module that cannot require.
  writeFileSync(join(dir, 'package.json'), '{"type":"commonjs"}\n');
  writeFileSync(bin, KUBECTL);
  chmodSync(bin, 0o755);
  const log = join(dir, 'calls.jsonl');
  const state = join(dir, 'route.json');
  writeFileSync(log, '');
  writeFileSync(state, JSON.stringify(route));
  return {
    dir,
    env: { STANDIN_LOG: log, STANDIN_ROUTE: state },
    calls: () =>
      readFileSync(log, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as string[]),
    route: () => JSON.parse(readFileSync(state, 'utf8')),
    setRoute: (r) => writeFileSync(state, JSON.stringify(r)),
  };
}

export interface PrometheusStandIn {
  url: string;
  queries: string[];
  close(): Promise<void>;
}

/** `answer` maps a PromQL query to its scalar result (null: an empty vector, i.e. no data; a throw: HTTP 503). */
export async function prometheusStandIn(answer: (query: string) => number | null): Promise<PrometheusStandIn> {
  const queries: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/api/v1/query') {
      res.writeHead(404).end();
      return;
    }
    const q = url.searchParams.get('query') ?? '';
    queries.push(q);
    let v: number | null;
    try {
      v = answer(q);
    } catch {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('unavailable'); // answer throws: Prometheus is down
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: v === null ? [] : [{ metric: {}, value: [1_795_000_000, String(v)] }] } }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, queries, close: () => new Promise((r) => server.close(() => r())) };
}
