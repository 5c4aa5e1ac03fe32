// kgateway-manifests/ checked without a cluster: each overlay built (test/helpers/kustomize.ts), every custom
// resource validated against the published CRDs (structural schema, defaults, unknown fields, CEL), core and
// prometheus-operator objects against their models' schemas, and the objects checked against each other and
// against tiergate itself (config, ports, processing mode, metric names).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PodMonitor, PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { CronJob } from 'kubernetes-models/batch/v1';
import { Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { ConfigMap, Service, ServiceAccount } from 'kubernetes-models/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { DUPLEX_FILTER, RECOMMENDED_FILTER, SHIPPED_MESSAGE_TIMEOUT_MS } from '../../src/dev/envoy-client.js';
import { CrdValidator } from '../helpers/crd-validator.js';
import { kustomizeBuild, manifestsDir, readObjects, type K8sObject } from '../helpers/kustomize.js';
import { SHARED } from '../helpers/shared-data.js';
import { groupingProblems, promqlProblems, tiergateMetricLabels } from '../helpers/promql.js';
import { TRACING_FLUSH_MS } from '../../src/telemetry/tracing.js';
import { END_FLUSH_MS } from '../../src/extproc/server.js';
import { ledgerCloseMs } from '../../src/ledger/sink-channel.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- walking parsed YAML

const CRDS = join(SHARED, 'schemas/crds');
const crdFiles = [
  ...readdirSync(join(CRDS, 'kgateway/v2.2.0')).map((f) => join(CRDS, 'kgateway/v2.2.0', f)),
  ...readdirSync(join(CRDS, 'gateway-api/v1.4.1/standard')).map((f) => join(CRDS, 'gateway-api/v1.4.1/standard', f)),
];
const crds = new CrdValidator(crdFiles);

// Core and prometheus-operator kinds: their models carry the upstream JSON schemas (required fields, types).
const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  'apps/v1/Deployment': Deployment,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'v1/ServiceAccount': ServiceAccount,
  'batch/v1/CronJob': CronJob,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

function problemsOf(o: K8sObject): string[] {
  if (crds.knows(o.apiVersion, o.kind)) return crds.validate(o as never);
  const Model = MODELS[`${o.apiVersion}/${o.kind}`];
  if (!Model) return [`${o.apiVersion} ${o.kind}: no schema to validate against`];
  try {
    new Model(o as never).validate();
    return [];
  } catch (e) {
    return [(e as Error).message];
  }
}

const OVERLAYS = ['dev', 'production', 'full-duplex'];
const built = Object.fromEntries(OVERLAYS.map((o) => [o, kustomizeBuild(manifestsDir(`overlays/${o}`))])) as Record<string, K8sObject[]>;
const find = (objs: K8sObject[], kind: string, name?: string) => objs.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name)) as Obj;

describe('kgateway manifests validate', () => {
  it.each(readdirSync(manifestsDir('base')).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml'))('base/%s on its own', (file) => {
    for (const o of readObjects(join(manifestsDir('base'), file))) expect(problemsOf(o), `${o.kind}/${o.metadata.name}`).toEqual([]);
  });

  it.each(OVERLAYS)('overlays/%s, built', (overlay) => {
    const objs = built[overlay] as K8sObject[];
    expect(objs.map((o) => o.kind).sort()).toEqual(expect.arrayContaining(['ConfigMap', 'Deployment', 'Gateway', 'GatewayExtension', 'HTTPRoute', 'HorizontalPodAutoscaler', 'NetworkPolicy', 'PodDisruptionBudget', 'PodMonitor', 'PrometheusRule', 'Service', 'ServiceMonitor', 'TrafficPolicy']));
    for (const o of objs) expect(problemsOf(o), `${o.kind}/${o.metadata.name}`).toEqual([]);
  });

  it('the validators catch mistakes: an unknown field, a bad enum, a broken CEL rule, a missing core field', () => {
    const objs = built.production as K8sObject[];
    const route = structuredClone(find(objs, 'HTTPRoute')) as K8sObject & Obj;
    route.spec.rules[0].filters[0] = { type: 'ExtensionRef' }; // CEL: extensionRef must be set
    route.spec.rules[1].backendRef = route.spec.rules[1].backendRefs; // typo: unknown field
    expect(problemsOf(route).join('\n')).toMatch(/extensionRef must be specified[\s\S]*backendRef: unknown field/);
    const ext = structuredClone(find(objs, 'GatewayExtension')) as K8sObject & Obj;
    ext.spec.extProc.processingMode.requestBodyMode = 'BUFFER';
    ext.spec.extProc.messageTimeout = '0.5s'; // the CRD's pattern wants integer units, e.g. 500ms
    expect(problemsOf(ext)).toHaveLength(2);
    const dep = structuredClone(find(objs, 'Deployment')) as K8sObject & Obj;
    delete dep.spec.template.spec.containers[0].name;
    expect(problemsOf(dep).join()).toMatch(/name/);
  });
});

describe('kgateway manifests agree with each other and with tiergate', () => {
  const objs = built.production as K8sObject[];
  const config = find(objs, 'ConfigMap', 'tiergate-config');
  const deployment = find(objs, 'Deployment', 'tiergate');
  const container = deployment.spec.template.spec.containers[0] as Obj;
  const loaded = parseConfigText(config.data['tiergate.yaml'] as string, { REDIS_URL: 'redis://redis.ai-inference:6379' });

  it('the ConfigMap holds a valid tiergate config, without mode overrides (kgateway exposes no allow_mode_override)', () => {
    expect(loaded.ok ? [] : loaded.problems).toEqual([]);
    if (!loaded.ok) return;
    expect(loaded.config.envoy.allowModeOverride).toBe(false);
    // Fail-open splits each limit across the replicas the HPA keeps at least.
    expect(loaded.config.budgets.expectedInstances).toBe(find(objs, 'HorizontalPodAutoscaler').spec.minReplicas);
    // Several replicas: a Responses conversation finds its tier whichever replica its next turn reaches.
    expect(loaded.config.routing.affinity).toMatchObject({ store: 'redis', redis: { url: 'redis://redis.ai-inference:6379' } });
  });

  it('the Deployment serves that config from a directory mount (hot reload through the ..data swap), non-root, with probes on the admin port', () => {
    const configArg = (container.args as string[])[(container.args as string[]).indexOf('--config') + 1] as string;
    const mount = (container.volumeMounts as Obj[]).find((m) => configArg.startsWith(`${m.mountPath}/`)) as Obj;
    expect(mount.subPath).toBeUndefined();
    const volume = (deployment.spec.template.spec.volumes as Obj[]).find((v) => v.name === mount.name) as Obj;
    expect(volume.configMap.name).toBe(config.metadata.name);
    expect(configArg.slice(mount.mountPath.length + 1)).toBe('tiergate.yaml');
    expect(deployment.spec.template.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532 });
    expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    const ports = Object.fromEntries((container.ports as Obj[]).map((p) => [p.name, p.containerPort]));
    if (!loaded.ok) throw new Error('config');
    expect(ports.grpc).toBe(Number(loaded.config.server.listen.split(':').at(-1)));
    expect(ports['http-admin']).toBe(Number(loaded.config.server.admin.split(':').at(-1)));
    expect([container.readinessProbe.httpGet.path, container.livenessProbe.httpGet.path]).toEqual(['/readyz', '/healthz']);
    // The spool and the key files live where the config says.
    const paths = (container.volumeMounts as Obj[]).map((m) => m.mountPath as string);
    expect(paths.some((p) => loaded.config.ledger.spoolDir.startsWith(`${p}/`))).toBe(true);
    for (const k of loaded.config.auth.keys) if (k.sha256File) expect(paths.some((p) => (k.sha256File as string).startsWith(`${p}/`))).toBe(true);
    // Kubernetes waits longer than tiergate's drain, its shutdown grace, the ledger's delivery and the spans'
    // flush together before it kills the pod.
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(loaded.config.server.drainDelayMs + loaded.config.server.shutdownGraceMs + ledgerCloseMs(loaded.config.ledger.writeTimeoutMs) + END_FLUSH_MS + TRACING_FLUSH_MS);
  });

  it('the spool directory\'s emptyDir holds the spools at their bound: past its sizeLimit kubelet evicts the pod, spool and all', () => {
    if (!loaded.ok) throw new Error('config');
    const mount = (container.volumeMounts as Obj[]).find((m) => loaded.config.ledger.spoolDir.startsWith(`${m.mountPath}/`)) as Obj;
    const volume = (deployment.spec.template.spec.volumes as Obj[]).find((v) => v.name === mount.name) as Obj;
    const sizeLimit = String(volume.emptyDir.sizeLimit);
    const units: Record<string, number> = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 };
    const limitBytes = Number(sizeLimit.replace(/[KMG]i$/, '')) * (units[sizeLimit.slice(-2)] ?? 1);
    // Per sink: a spool file under twice its bound (its delivered front is compacted once larger than the rest),
    // a rewrite's copy of the rest, and a failed queue put in front (rows of ~1 KB); 16 MB for the kept budget
    // reconciles (at most 10,000).
    const { sinks, spoolMaxBytes, queueSize } = loaded.config.ledger;
    const worst = sinks.length * (3 * spoolMaxBytes + queueSize * 2048) + 16 * 1024 ** 2;
    expect(worst).toBeLessThan(limitBytes);
  });

  it('the GatewayExtension reaches tiergate over h2c on its gRPC port, with the processing mode tiergate is tested with', () => {
    const ext = find(objs, 'GatewayExtension');
    const service = find(objs, 'Service', ext.spec.extProc.grpcService.backendRef.name);
    const port = (service.spec.ports as Obj[]).find((p) => p.port === ext.spec.extProc.grpcService.backendRef.port) as Obj;
    expect(port.appProtocol).toBe('kubernetes.io/h2c');
    expect(port.targetPort).toBe('grpc');
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
    // The CRD's processingMode spells the same six modes the client's ProcessingMode holds.
    expect(ext.spec.extProc.processingMode).toEqual(RECOMMENDED_FILTER.processingMode);
    expect(ext.spec.extProc.routeCacheAction).toBe('Clear');
    // The message timeout `tiergate dev`'s data plane uses, as envoy.yaml's.
    expect(ext.spec.extProc.messageTimeout).toBe(`${SHIPPED_MESSAGE_TIMEOUT_MS}ms`);
  });

  it('overlays/full-duplex: the GatewayExtension and the TrafficPolicy ask for the duplex filter tiergate is tested with, and change nothing else', () => {
    const duplex = built['full-duplex'] as K8sObject[];
    const modes = DUPLEX_FILTER.processingMode;
    expect(find(duplex, 'GatewayExtension').spec.extProc.processingMode).toEqual(modes);
    expect(find(duplex, 'TrafficPolicy').spec.extProc.processingMode).toEqual(modes);
    const strip = (objs: K8sObject[]) => objs.map((o) => (o.kind === 'GatewayExtension' || o.kind === 'TrafficPolicy' ? { ...o, spec: { ...(o.spec as Obj), extProc: { ...(o.spec as Obj).extProc, processingMode: undefined } } } : o));
    expect(strip(duplex)).toEqual(strip(objs));
  });

  it('every HTTPRoute rule, the catch-all classify rule included, attaches the TrafficPolicy that enables tiergate', () => {
    const route = find(objs, 'HTTPRoute');
    const policy = find(objs, 'TrafficPolicy');
    expect(policy.spec.extProc.extensionRef.name).toBe(find(objs, 'GatewayExtension').metadata.name);
    expect(policy.spec.targetRefs).toBeUndefined(); // attached by ExtensionRef only
    const rules = route.spec.rules as Obj[];
    expect(rules.map((r) => r.name)).toEqual(['strong', 'weak', 'classify']);
    for (const r of rules) {
      expect(r.filters).toContainEqual({ type: 'ExtensionRef', extensionRef: { group: 'gateway.kgateway.dev', kind: 'TrafficPolicy', name: policy.metadata.name } });
      // The route timeout covers the whole streamed response: long enough for a long generation (300 s cut them).
      expect(r.timeouts.request).toBe('3600s');
    }
    const tierMatches = rules.flatMap((r) => (r.matches as Obj[]).flatMap((m) => (m.headers ?? []).map((h: Obj) => h.value)));
    if (!loaded.ok) throw new Error('config');
    expect(tierMatches.sort()).toEqual(Object.keys(loaded.config.tiers).sort());
    expect(rules[2]?.matches).toEqual([{ path: { type: 'PathPrefix', value: '/v1/' } }]);
    expect((rules[0]?.backendRefs as Obj[]).map((b) => [b.name, b.weight])).toEqual([['llm-strong', 90], ['llm-strong-canary', 10]]);
  });

  it('the canary check CronJob may only get and patch this HTTPRoute, and names the route’s own rule and backends', () => {
    const cron = find(objs, 'CronJob');
    const pod = cron.spec.jobTemplate.spec.template.spec;
    const role = find(objs, 'Role', 'tiergate-canary');
    expect(role.rules).toEqual([{ apiGroups: ['gateway.networking.k8s.io'], resources: ['httproutes'], resourceNames: ['llm-tier-route'], verbs: ['get', 'patch'] }]);
    const binding = find(objs, 'RoleBinding', 'tiergate-canary');
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: pod.serviceAccountName }]);
    const args = pod.containers[0].args as string[];
    const flag = (f: string) => args[args.indexOf(f) + 1];
    const route = find(objs, 'HTTPRoute');
    const strong = (route.spec.rules as Obj[]).find((r) => r.name === flag('--rule')) as Obj;
    expect([flag('--route'), flag('--stable'), flag('--canary')]).toEqual([route.metadata.name, strong.backendRefs[0].name, strong.backendRefs[1].name]);
    expect(flag('--namespace')).toBe('$(POD_NAMESPACE)');
    expect(pod.containers[0].env).toContainEqual({ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } });
    expect([flag('--max-error-rate'), flag('--max-4xx-excess'), flag('--max-p99-ms'), flag('--window')]).toEqual(['0.02', '0.05', '15000', '5m']);
  });

  // What kgateway 2.2 makes of a Gateway (pkg/kgateway/helm/envoy/templates/deployment.yaml and _helpers.tpl, with
  // the default GatewayParameters' stats.enabled: true): proxy pods labelled with the Gateway's name, in its
  // namespace, serving Envoy's /stats/prometheus?usedonly at /metrics on the container port named http-monitoring.
  const KGATEWAY_PROXY = { gatewayNameLabel: 'gateway.networking.k8s.io/gateway-name', statsPort: 'http-monitoring', statsPath: '/metrics' };

  it('a PodMonitor scrapes the Envoy stats of the Gateway’s proxy pods, which the canary and the upstream alerts read', () => {
    const monitor = find(objs, 'PodMonitor');
    const gateway = find(objs, 'Gateway');
    // Without a namespaceSelector a PodMonitor looks in its own namespace: the Gateway's, where kgateway puts the proxy.
    expect(monitor.metadata.namespace).toBe(gateway.metadata.namespace);
    expect(monitor.spec.namespaceSelector).toBeUndefined();
    expect(monitor.spec.selector).toEqual({ matchLabels: { [KGATEWAY_PROXY.gatewayNameLabel]: gateway.metadata.name } });
    expect(monitor.spec.podMetricsEndpoints).toEqual([{ port: KGATEWAY_PROXY.statsPort, path: KGATEWAY_PROXY.statsPath, interval: '15s' }]);
    // The readers: the CronJob's `canary check` (Envoy's cluster stats by design) and the alerts on envoy_ metrics.
    expect(find(objs, 'CronJob').spec.jobTemplate.spec.template.spec.containers[0].args).toContain('check');
    const rules = (find(objs, 'PrometheusRule').spec.groups as Obj[]).flatMap((g) => g.rules as Obj[]);
    expect(rules.filter((r) => /\benvoy_/.test(r.expr as string)).map((r) => r.alert)).toEqual(['TiergateUpstream5xxHigh', 'TiergateUpstreamP99Slow']);
  });

  it('backends in another namespace are allowed by a ReferenceGrant there', () => {
    const route = find(objs, 'HTTPRoute');
    const grants = objs.filter((o) => o.kind === 'ReferenceGrant') as Obj[];
    for (const ref of (route.spec.rules as Obj[]).flatMap((r) => r.backendRefs as Obj[])) {
      if (!ref.namespace || ref.namespace === route.metadata.namespace) continue;
      const ok = grants.some(
        (g) =>
          g.metadata.namespace === ref.namespace &&
          (g.spec.from as Obj[]).some((f) => f.kind === 'HTTPRoute' && f.namespace === route.metadata.namespace) &&
          (g.spec.to as Obj[]).some((t) => t.kind === 'Service' && t.group === ''),
      );
      expect(ok, `${ref.namespace}/${ref.name}`).toBe(true);
    }
    expect(grants).toHaveLength(1);
  });

  it.each(OVERLAYS)('overlays/%s: the NetworkPolicy admits the Gateway’s proxy pods to the gRPC port and Prometheus to the admin port, nothing else', (overlay) => {
    const objs = built[overlay] as K8sObject[];
    const policy = find(objs, 'NetworkPolicy', 'tiergate');
    const deployment = find(objs, 'Deployment', 'tiergate');
    const gateway = find(objs, 'Gateway');
    // It selects tiergate's pods, in tiergate's namespace, and restricts ingress only.
    expect(policy.metadata.namespace).toBe(deployment.metadata.namespace);
    expect(Object.entries(policy.spec.podSelector.matchLabels).every(([k, v]) => deployment.spec.template.metadata.labels[k] === v)).toBe(true);
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    // Each rule opens one of the container's named ports, to one kind of peer.
    const containerPorts = (deployment.spec.template.spec.containers[0].ports as Obj[]).map((p) => p.name);
    const rules = policy.spec.ingress as Obj[];
    expect(rules.map((r) => (r.ports as Obj[]).map((p) => p.port))).toEqual([['grpc'], ['http-admin']]);
    for (const r of rules) for (const p of r.ports as Obj[]) expect(containerPorts).toContain(p.port);
    // gRPC: the Gateway's proxy pods, by the label kgateway puts on them, in the Gateway's namespace (no namespaceSelector).
    expect(gateway.metadata.namespace).toBe(policy.metadata.namespace);
    expect(rules[0]?.from).toEqual([{ podSelector: { matchLabels: { [KGATEWAY_PROXY.gatewayNameLabel]: gateway.metadata.name } } }]);
    // Admin: Prometheus pods in any namespace, and nobody else (every peer names a pod label).
    expect(rules[1]?.from).toEqual([{ namespaceSelector: {}, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }]);
    // The ServiceMonitor scrapes the port the policy opens to Prometheus.
    const service = find(objs, 'Service', 'tiergate');
    const scraped = (service.spec.ports as Obj[]).find((p) => p.name === find(objs, 'ServiceMonitor').spec.endpoints[0].port);
    expect(scraped?.targetPort).toBe('http-admin');
  });

  it('the ServiceMonitor scrapes the admin port; every alert is valid PromQL, and every tiergate metric and label it uses exists', async () => {
    const sm = find(objs, 'ServiceMonitor');
    expect(sm.spec.endpoints[0].port).toBe('http-admin');
    expect(sm.spec.selector.matchLabels).toEqual(find(objs, 'Service', 'tiergate').metadata.labels);
    const labelsOf = await tiergateMetricLabels();
    const rules = (find(objs, 'PrometheusRule').spec.groups as Obj[]).flatMap((g) => g.rules as Obj[]);
    // An alert whose expression does not parse is rejected when loaded; one on a metric or label that does not
    // exist never fires, and one grouped by a label its metrics lack sums every series into one.
    expect(rules.flatMap(({ alert, expr }) => [...promqlProblems(alert as string, expr as string, labelsOf), ...groupingProblems(alert as string, expr as string, labelsOf)])).toEqual([]);
    expect(rules.map((r) => r.alert)).toEqual([
      'TiergateTenantDailyBudget80',
      'TiergateUpstream5xxHigh',
      'TiergateUpstreamP99Slow',
      'TiergateFallbackShareHigh',
      'TiergateWeeklyCostDrift',
      'TiergateUnpricedRequests',
      'TiergateBudgetStoreDegraded',
      'TiergateRedisMayEvict',
      'TiergateBudgetStoreSlow',
      'TiergateLedgerSpooling',
      'TiergateLedgerRowsOnlyInLog',
      'TiergateProcessingErrors',
      'TiergateBodyNotSent',
      'TiergateFilterModeRefused',
      'TiergateResponseHeadersNotSent',
      'TiergateStageSkipped',
      'TiergateApiKeyExpiring',
      'TiergateConfigReloadRejected',
      'TiergateConfigRestartRequired',
      'TiergateCacheStoreDegraded',
      'TiergateSemanticEmbedderBusy',
    ]);
  });
});
