// docker-compose.yml, the Dockerfile and envoy/envoy.yaml must agree (there is no Docker engine here): every
// Envoy cluster endpoint is a compose service listening on that port, every Redis tiergate uses is the Redis
// service, published ports are the ones the configs listen on, images are pinned, the image runs non-root.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { havePromtool } from '../helpers/promtool.js';
import { TRACING_FLUSH_MS } from '../../src/telemetry/tracing.js';
import { END_FLUSH_MS } from '../../src/extproc/server.js';
import { ledgerCloseMs } from '../../src/ledger/sink-channel.js';

const path = (rel: string) => fileURLToPath(new URL(`../../${rel}`, import.meta.url));
const read = (rel: string) => readFileSync(path(rel), 'utf8');
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- walking parsed YAML

const compose = parse(read('docker-compose.yml'), { merge: true }) as Obj;
const services = compose.services as Record<string, Obj>;
const envoy = parse(read('envoy/envoy.yaml'), { merge: true }) as Obj;
const loaded = parseConfigText(read('envoy/tiergate.yaml'), {});
if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
const tiergate = loaded.config;

const portOf = (hostPort: string) => Number(hostPort.split(':').at(-1));
/** The ports a compose service's process listens on, read from its own command or config. */
function listenPorts(name: string): number[] {
  const cmd = (services[name]?.command ?? []) as string[];
  const i = cmd.indexOf('--listen');
  if (i !== -1) return [portOf(cmd[i + 1] as string)];
  if (cmd.includes('serve')) return [portOf(tiergate.server.listen)];
  // The OpenTelemetry collector: the receivers its mounted config opens.
  const c = cmd.indexOf('--config');
  const config = c === -1 ? undefined : mounts(name).find((m) => m.inside === cmd[c + 1]);
  if (config === undefined) return [];
  const receivers = (parse(read(config.local)) as Obj).receivers as Record<string, Obj>;
  return Object.values(receivers).flatMap((r) => Object.values((r.protocols ?? {}) as Record<string, Obj>).map((p) => portOf(p.endpoint as string)));
}
const published = (name: string) => ((services[name]?.ports ?? []) as string[]).map((p) => Number(p.split(':').at(-1)));
/** Host bind mounts: "./local:/in/container[:ro]". */
const mounts = (name: string) =>
  ((services[name]?.volumes ?? []) as string[]).filter((v) => v.startsWith('./')).map((v) => ({ local: v.split(':')[0] as string, inside: v.split(':')[1] as string }));

describe('docker-compose.yml ↔ envoy/envoy.yaml ↔ envoy/tiergate.yaml', () => {
  it('every static Envoy cluster endpoint is a compose service, on the port that service listens on', () => {
    const endpoints = (envoy.static_resources.clusters as Obj[])
      .filter((c) => c.load_assignment)
      .flatMap((c) => (c.load_assignment.endpoints as Obj[]).flatMap((e) => (e.lb_endpoints as Obj[]).map((l) => ({ cluster: c.name, ...l.endpoint.address.socket_address }))));
    expect(endpoints.length).toBeGreaterThanOrEqual(4);
    for (const e of endpoints) {
      expect(Object.keys(services), `cluster ${e.cluster}`).toContain(e.address);
      expect(listenPorts(e.address), `cluster ${e.cluster}`).toContain(e.port_value);
    }
  });

  it('Envoy gets this envoy.yaml, and publishes its listener and admin ports', () => {
    expect(mounts('envoy')).toEqual([{ local: './envoy/envoy.yaml', inside: '/etc/envoy/envoy.yaml' }]);
    expect(services.envoy?.command).toEqual(expect.arrayContaining(['-c', '/etc/envoy/envoy.yaml']));
    const listener = envoy.static_resources.listeners[0].address.socket_address.port_value as number;
    expect(published('envoy')).toEqual(expect.arrayContaining([listener, envoy.admin.address.socket_address.port_value]));
  });

  it('tiergate serves envoy/tiergate.yaml, its health check probes its own admin port, which is published', () => {
    expect(mounts('tiergate')).toContainEqual({ local: './envoy/tiergate.yaml', inside: '/etc/tiergate/tiergate.yaml' });
    expect(services.tiergate?.command).toEqual(['dist/cli.js', 'serve', '--config', '/etc/tiergate/tiergate.yaml']);
    const admin = portOf(tiergate.server.admin);
    expect(JSON.stringify(services.tiergate?.healthcheck.test)).toContain(`127.0.0.1:${admin}/readyz`);
    expect(published('tiergate')).toContain(admin);
    // docker compose stop waits longer than tiergate's drain, its shutdown grace, the ledger's delivery and the
    // spans' flush (the compose file traces to the observability profile's collector) together before it kills it.
    expect(Number(/^(\d+)s$/.exec(services.tiergate?.stop_grace_period as string)?.[1]) * 1000).toBeGreaterThan(tiergate.server.drainDelayMs + tiergate.server.shutdownGraceMs + ledgerCloseMs(tiergate.ledger.writeTimeoutMs) + END_FLUSH_MS + TRACING_FLUSH_MS);
    // The ledger's file sink and spool live on the persistent volume.
    const data = (services.tiergate?.volumes as string[]).find((v) => v.startsWith('tiergate-data:'))?.split(':')[1] as string;
    for (const dir of [tiergate.ledger.spoolDir, ...tiergate.ledger.sinks.flatMap((s) => (s.type === 'file' ? [s.dir] : []))]) expect(dir.startsWith(`${data}/`)).toBe(true);
  });

  it('every Redis URL in tiergate’s config is the compose Redis service, on its port', () => {
    const urls = [
      ...tiergate.ledger.sinks.flatMap((s) => (s.type === 'redis' ? [s.url] : [])),
      ...(tiergate.budgets.redis ? [tiergate.budgets.redis.url] : []),
      ...(tiergate.routing.affinity.redis ? [tiergate.routing.affinity.redis.url] : []),
    ];
    expect(urls.length).toBeGreaterThanOrEqual(3);
    for (const u of urls) {
      const { hostname, port } = new URL(u);
      expect(services[hostname]?.image).toMatch(/^redis:8/); // Redis 8: vector search for the cache
      expect(Number(port || 6379)).toBe(6379);
    }
  });

  it('the mock backends run tiergate’s own mock command from the tiergate image', () => {
    for (const name of ['weak', 'strong', 'strong-canary']) {
      expect(services[name]?.image).toBe(services.tiergate?.image);
      expect((services[name]?.command as string[]).slice(0, 4)).toEqual(['dist/cli.js', 'mock', '--name', name]);
    }
  });

  it('every backend serves the model of each tier it answers for, its own first: a fallback is answered, and seen as one', () => {
    const clusters = new Map((envoy.static_resources.clusters as Obj[]).map((c) => [c.name as string, c]));
    const modelOf = (tier: string) => tiergate.tiers[tier]?.model as string;
    /** The names a compose service's mock serves (`--served-model-name`), in order. */
    const servedBy = (cluster: string) => {
      const hosts = (clusters.get(cluster)?.load_assignment.endpoints as Obj[]).flatMap((e) => (e.lb_endpoints as Obj[]).map((l) => l.endpoint.address.socket_address.address as string));
      return hosts.map((h) => {
        const cmd = services[h]?.command as string[];
        return (cmd[cmd.indexOf('--served-model-name') + 1] ?? '').split(',');
      });
    };
    const checked: string[] = [];
    for (const route of envoy.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes as Obj[]) {
      const tier = (route.match.headers as Obj[] | undefined)?.find((h) => h.name === 'x-llm-tier')?.string_match.exact as string | undefined;
      if (tier === undefined) continue;
      const targets = route.route.cluster ? [route.route.cluster as string] : (route.route.weighted_clusters.clusters as Obj[]).map((c) => c.name as string);
      for (const target of targets) {
        const aggregate = clusters.get(target)?.cluster_type?.typed_config.clusters as string[] | undefined;
        const [primary, ...fallbacks] = aggregate ?? [target];
        // The tier's own backends report its model, so its answers are not taken for fallbacks.
        for (const names of servedBy(primary as string)) expect(names[0], `${primary} for tier ${tier}`).toBe(modelOf(tier));
        // A fallback gets the body tiergate rewrote for this tier: it must serve that model (vLLM 404s another),
        // and report its own tier's, which the row's fallback_used compares.
        for (const fallback of fallbacks) {
          const own = Object.keys(tiergate.tiers).find((t) => servedBy(fallback).every((n) => n[0] === modelOf(t)));
          expect(own, `fallback ${fallback} is some tier's own backend`).toBeDefined();
          expect(own, `fallback ${fallback} of ${tier}`).not.toBe(tier);
          for (const names of servedBy(fallback)) expect(names, `fallback ${fallback} of tier ${tier}`).toContain(modelOf(tier));
        }
        checked.push(`${tier}:${target}`);
      }
    }
    expect(checked).toEqual(['strong:strong_stable_with_fallback', 'strong:strong_canary_with_fallback', 'weak:weak']);
  });

  it('the observability profile scrapes services that exist, on their ports', () => {
    for (const name of ['otel-collector', 'prometheus']) expect(services[name]?.profiles).toEqual(['observability']);
    const prom = parse(read('observability/prometheus.yml')) as Obj;
    const targets = (prom.scrape_configs as Obj[]).flatMap((s) => s.static_configs.flatMap((c: Obj) => c.targets as string[]));
    expect(targets).toEqual([`tiergate:${portOf(tiergate.server.admin)}`, `envoy:${envoy.admin.address.socket_address.port_value}`]);
  });

  it('the compose Prometheus evaluates the alerts of the kgateway base, unchanged, from a rule file it mounts', () => {
    const prom = parse(read('observability/prometheus.yml')) as Obj;
    const ruleFiles = prom.rule_files as string[];
    expect(ruleFiles).toHaveLength(1);
    const mounted = mounts('prometheus').find((m) => m.inside === ruleFiles[0]);
    expect(mounted?.local).toBe('./observability/alerts.yml');
    const rule = parse(read('kgateway-manifests/base/prometheusrule.yaml')) as Obj;
    // Prometheus reads rule groups, not the operator's PrometheusRule; the file holds its groups as they are.
    expect(parse(read('observability/alerts.yml')), 'observability/alerts.yml must hold the PrometheusRule’s spec.groups').toEqual({ groups: rule.spec.groups });
  });

  it.skipIf(!havePromtool)('the alert rule file is one Prometheus loads (promtool check rules)', () => {
    const out = execFileSync('promtool', ['check', 'rules', path('observability/alerts.yml')], { encoding: 'utf8' });
    const groups = (parse(read('observability/alerts.yml')) as Obj).groups as Obj[];
    expect(out).toContain(`SUCCESS: ${groups.flatMap((g) => g.rules as Obj[]).length} rules found`);
  });

  it('every bind-mounted file exists, and every image is pinned to a version', () => {
    for (const name of Object.keys(services)) for (const m of mounts(name)) expect(existsSync(path(m.local)), m.local).toBe(true);
    for (const [name, s] of Object.entries(services)) {
      if (s.build) continue;
      expect(s.image, name).toMatch(/:(v?\d+\.\d+(\.\d+)?|local)$/);
    }
  });
});

describe('Dockerfile', () => {
  const text = read('Dockerfile');
  const stages = text.split(/^FROM /m).slice(1);
  const final = stages.find((st) => / AS runtime\n/.test(st)) as string;
  it('is multi-stage, and the final image carries production dependencies only', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(stages.at(-1)?.trim()).toBe('runtime'); // `docker build .` gives the server image
    expect(text).toMatch(/npm ci --omit=dev/);
    expect(final).not.toMatch(/npm (ci|install)(?! --omit=dev)/);
    expect(final).toMatch(/COPY --from=prod-deps \/app\/node_modules/);
    // src/version.ts reads ../package.json from dist/: `--version` and the start's log line need it there.
    expect(final).toMatch(/^COPY package\.json \.\/$/m);
    expect(final).toMatch(/^WORKDIR \/app$/m);
    expect(final).toMatch(/COPY --from=build \/app\/dist \.\/dist/);
  });
  it('runs as a non-root user, and its command is tiergate serve', () => {
    const user = /^USER (\S+)/m.exec(final)?.[1] ?? '';
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    expect(user).not.toBe('');
    expect(JSON.parse(/^CMD (.+)$/m.exec(final)?.[1] ?? '[]')).toEqual(['dist/cli.js', 'serve']);
  });
  it('gives V8 a young generation of 16 MB semi-spaces through NODE_OPTIONS, which nothing that runs the image replaces', () => {
    const options = /^ENV NODE_OPTIONS=(\S+)$/m.exec(final)?.[1] ?? '';
    expect(options).toBe('--max-semi-space-size=16');
    // Node accepts the flag in NODE_OPTIONS (it refuses V8 flags it does not allow there) and V8 takes it: the new
    // space is two 16 MB semi-spaces once a young collection has grown it to its maximum.
    const probe = "let k=[];for(let i=0;i<3e6;i++){k.push({i});if(k.length>2e5)k=[]}process.stdout.write(String(require('v8').getHeapSpaceStatistics().find((s)=>s.space_name==='new_space').space_size))";
    const newSpace = Number(execFileSync(process.execPath, ['-e', probe], { env: { ...process.env, NODE_OPTIONS: options }, encoding: 'utf8' }));
    expect(newSpace).toBe(32 * 1024 * 1024);
    expect(services.tiergate?.environment).not.toHaveProperty('NODE_OPTIONS');
    const deployment = read('kgateway-manifests/base/tiergate-deployment.yaml');
    expect(deployment).not.toMatch(/NODE_OPTIONS/);
  });
  it('has a canary target: the runtime plus kubectl, running the rollback check', () => {
    const canary = stages.find((st) => st.startsWith('runtime AS canary')) as string;
    expect(canary).toMatch(/COPY --from=kubectl \/kubectl \/usr\/local\/bin\/kubectl/);
    expect(JSON.parse(/^CMD (.+)$/m.exec(canary)?.[1] ?? '[]')).toEqual(['dist/cli.js', 'canary', 'check']);
  });
  // BuildKit's value of an automatic platform ARG reaches a stage only when the stage declares it without one
  // (docker/buildx#510): `ARG TARGETARCH=amd64` put an amd64 kubectl into an arm64 canary image.
  it('takes the target platform from the build: no automatic platform ARG is given a default', () => {
    const platformArgs = [...text.matchAll(/^ARG ((?:TARGET|BUILD)(?:PLATFORM|OS|ARCH|VARIANT))(=.*)?$/gm)];
    expect(platformArgs.map((m) => m[1])).toContain('TARGETARCH');
    expect(platformArgs.filter((m) => m[2] !== undefined).map((m) => m[0])).toEqual([]);
    expect(text).toMatch(/\/bin\/linux\/\$\{TARGETARCH\}\/kubectl /);
  });
  it('builds and runs on one Node major, the one .ci/run also tests on', () => {
    const majors = [...text.matchAll(/^FROM (?:node:(\d+)-|gcr\.io\/distroless\/nodejs(\d+)-)/gm)].map((m) => m[1] ?? m[2]);
    expect(majors.length).toBeGreaterThanOrEqual(3); // the build stages and the runtime
    expect(new Set(majors).size).toBe(1);
    // The suite runs on the shipped runtime's major too, not only on the machines' Node.
    expect(read('.ci/run')).toMatch(new RegExp(`^NODE_IMAGE_VERSION=${majors[0]}\\.\\d+\\.\\d+$`, 'm'));
  });
  it('never copies secrets, build output or the ledger into the build context', () => {
    const ignored = read('.dockerignore').split('\n');
    for (const p of ['.git', 'node_modules', 'dist', 'tiergate-ledger']) expect(ignored).toContain(p);
  });
});
