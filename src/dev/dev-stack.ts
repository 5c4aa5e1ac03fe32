// `tiergate dev`: tiergate, mock weak/strong backends and the local data plane in one process, so a newcomer
// can curl :8080 with no Docker and no Envoy.
import type { Server } from 'node:http';
import { listenOn } from '../admin-server.js';
import { exitAfter, exitOnCrash, ignoreStraySignals, reloadOnHangup, serve, type Serving } from '../main.js';
import { createDataPlane, type DataPlane } from './data-plane.js';
import { DUPLEX_FILTER, RECOMMENDED_FILTER, SHIPPED_MESSAGE_TIMEOUT_MS } from './envoy-client.js';
import { createMockBackend } from './mock-backend.js';

export interface DevOptions {
  configFile?: string;
  host?: string;
  /** Data plane port (8080); 0 picks a free one (tests). */
  port?: number;
  grpcListen?: string;
  adminListen?: string;
  backendPorts?: { weak: number; strong: number };
  latencyMs?: number;
  chunkDelayMs?: number;
  env?: NodeJS.ProcessEnv;
  handleSignals?: boolean;
  /**
   * How the local Envoy sends bodies: 'buffered' (the shipped envoy.yaml: request BUFFERED, response STREAMED)
   * or 'duplex' (both FULL_DUPLEX_STREAMED).
   */
  bodyMode?: 'buffered' | 'duplex';
}

export interface DevStack {
  /** The config file named with --config; undefined on dev's own defaults. */
  configFile?: string;
  tiergate: Serving;
  dataPlane: DataPlane;
  url: string;
  backends: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * `tiergate dev` without --config: the embedded defaults of `tiergate serve`, plus the response cache for every
 * tenant (exact and semantic, with the local embedder), so a repeated or reworded curl shows a hit. (`serve` leaves
 * the cache off unless a policy turns it on.) And GET /v1/models answered by tiergate, as the shipped Envoy and
 * kgateway configs have it, so an SDK's model list shows "auto".
 */
export const DEV_DEFAULTS = `tenants: { "*": { cache: { mode: semantic } } }\nrouting: { models: { serve: true } }\n`;

export async function startDevStack(opts: DevOptions = {}): Promise<DevStack> {
  const host = opts.host ?? '127.0.0.1';
  const tiergate = await serve({
    configFile: opts.configFile,
    defaultConfigText: DEV_DEFAULTS,
    listen: opts.grpcListen ?? `${host}:9002`,
    admin: opts.adminListen ?? `${host}:9090`,
    env: opts.env,
    handleSignals: false,
  }).catch((err: Error) => {
    // serve() has closed what it opened. Its listeners' addresses are dev's own choice, so say how to move them.
    if (!/EADDRINUSE|EACCES/.test(err.message)) throw err;
    throw new Error(`tiergate's ext_proc or admin listener: ${err.message} (--listen and --admin move them)`);
  });
  const servers: Server[] = [];
  let dataPlane: DataPlane | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      for (const s of servers) {
        s.closeAllConnections();
        await new Promise<void>((r) => s.close(() => r()));
      }
      dataPlane?.pool.close();
      await tiergate.stop();
    })());
  const backends: Record<string, string> = {};
  let url: string;
  try {
    const ports = opts.backendPorts ?? { weak: 9101, strong: 9102 };
    for (const [name, port] of Object.entries(ports)) {
      const s = createMockBackend({ name, latencyMs: opts.latencyMs ?? 0, chunkDelayMs: opts.chunkDelayMs ?? 20 });
      const bound = await listenAs(`the ${name} mock backend`, s, `${host}:${port}`);
      servers.push(s);
      backends[name] = `http://${host}:${bound}`;
    }
    // Every configured tier needs a backend; tiers beyond weak/strong share the weak mock.
    for (const tier of tiergate.app.config.current().tiers.keys()) backends[tier] ??= backends.weak as string;
    // The local "Envoy" allows mode overrides exactly when tiergate's config says Envoy does, as envoy.yaml must.
    const allowModeOverride = tiergate.app.config.current().config.envoy.allowModeOverride;
    const dp = createDataPlane({
      extProcTarget: `${host}:${tiergate.grpcPort}`,
      backends,
      defaultTier: 'weak',
      filter: { ...(opts.bodyMode === 'duplex' ? DUPLEX_FILTER : RECOMMENDED_FILTER), allowModeOverride, messageTimeoutMs: SHIPPED_MESSAGE_TIMEOUT_MS },
    });
    dataPlane = dp;
    servers.push(dp.server);
    const dpPort = await listenAs('the data plane (--port)', dp.server, `${host}:${opts.port ?? 8080}`);
    url = `http://${host}:${dpPort}`;
  } catch (err) {
    // Whatever started is stopped, so the process ends with the error instead of running on half started (a
    // port taken left tiergate and the mocks up, and `npm start` never returned).
    await stop().catch(() => undefined);
    throw err;
  }
  if (opts.handleSignals) {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => exitAfter(stop(), tiergate.log));
    reloadOnHangup(tiergate.app.config, tiergate.log);
    ignoreStraySignals(tiergate.log);
    exitOnCrash(stop, tiergate.log);
  }
  return { configFile: opts.configFile, tiergate, dataPlane: dataPlane as DataPlane, url, backends, stop };
}

/** listenOn, its error saying which of the stack's listeners it was. */
function listenAs(what: string, server: Server, hostPort: string): Promise<number> {
  return listenOn(server, hostPort).catch((err: Error) => Promise.reject(new Error(`${what}: ${err.message}`)));
}

export function devBanner(stack: DevStack): string {
  const u = stack.url;
  const admin = `http://127.0.0.1:${stack.tiergate.adminPort}`;
  return `
tiergate dev is running
  data plane (Envoy stand-in)  ${u}
  tiergate ext_proc (gRPC)     127.0.0.1:${stack.tiergate.grpcPort}
  admin                        ${admin}/healthz  ${admin}/readyz  ${admin}/metrics
  mock backends                ${Object.entries(stack.backends).map(([k, v]) => `${k}=${v}`).join('  ')}

Try:
${configNotes(stack)}  # a short prompt → weak tier
  curl -s -i ${u}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"auto","messages":[{"role":"user","content":"Say hi"}]}'

  # a keyword the v7 rules send to the strong tier
  curl -s -i ${u}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"auto","messages":[{"role":"user","content":"Please refactor this module"}]}'

  # streaming (SSE; tiergate asks for the usage chunk, counts it and keeps it from this client)
  curl -s -N ${u}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"auto","stream":true,"messages":[{"role":"user","content":"Count to five"}]}'

  # the same request again: answered by tiergate from its cache (x-cache: hit-exact), the backend is not called
  curl -s -i ${u}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"auto","messages":[{"role":"user","content":"Say hi"}]}'

  # reworded (case, punctuation): a semantic hit (x-cache: hit-semantic), guarded so "Say hi 3 times" is not one
  curl -s -i ${u}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"auto","messages":[{"role":"user","content":"say hi!"}]}'

  # a client cannot pick its own tier: this still goes to weak
  curl -s -i ${u}/v1/chat/completions -H 'content-type: application/json' -H 'x-llm-tier: strong' \\
    -d '{"model":"auto","messages":[{"role":"user","content":"Say hi"}]}'

  # bad input → OpenAI-shaped 400
  curl -s -i ${u}/v1/chat/completions -H 'content-type: application/json' -d '{"model":"auto","messages":[]}'

  # the Responses API: a stored turn goes to routing.statefulTier (weak), a store:false one is classified (strong)
  curl -s -i ${u}/v1/responses -H 'content-type: application/json' -d '{"model":"auto","input":"Please refactor this"}'
  curl -s -i ${u}/v1/responses -H 'content-type: application/json' -d '{"model":"auto","store":false,"input":"Please refactor this"}'

  # the models a client may ask for here (answered by tiergate: auto, the aliases, the tier models)
  curl -s ${u}/v1/models

  # metrics
  curl -s ${admin}/metrics | grep ^tiergate_requests_total
${ledgerHint(stack)}`;
}

/**
 * What a config named with --config changes about the examples: they are written for dev's defaults (no keys,
 * the cache and the model list on). Under a file that asks for keys every one of them was a 401, with nothing
 * in the banner to say why.
 */
function configNotes(stack: DevStack): string {
  if (stack.configFile === undefined) return '';
  const runtime = stack.tiergate.app.config.current();
  const notes = [`  # with --config ${stack.configFile}: the cache lines below hold only if it turns the cache on for you`];
  if (runtime.config.auth.mode === 'api_key') {
    notes.push(`  # it asks for API keys: add -H 'authorization: Bearer <your key>' to each request, or each is a 401`);
  }
  // The examples name the defaults' tiers and v7's keywords: under other tiers or rules they route otherwise.
  const tiers = [...runtime.tiers.keys()];
  if (runtime.classifierVersion !== 'v7' || tiers.join() !== 'weak,strong') {
    notes.push(`  # its tiers are ${tiers.join(', ')} and its classifier ${runtime.classifierVersion}: the tiers and rules named below are the defaults' (weak, strong; v7)`);
  }
  if (!runtime.config.routing.models.serve) {
    notes.push('  # it leaves routing.models.serve off: /v1/models below is answered by a backend, not by tiergate');
  }
  return `${notes.join('\n')}\n\n`;
}

/** Where the rows of the requests above went, when a file sink is configured (the embedded default). */
function ledgerHint(stack: DevStack): string {
  const file = stack.tiergate.app.config.current().config.ledger.sinks.find((s) => s.type === 'file');
  if (!file || file.type !== 'file') return '';
  return `
  # one ledger row per request, and today's rollup
  tail -n 3 ${file.dir}/ledger-$(date -u +%F).jsonl
  node dist/cli.js ledger rollup --day $(date -u +%F) --file ${file.dir}
`;
}
