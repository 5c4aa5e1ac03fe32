// envoy/envoy.yaml is checked against Envoy's own protos (there is no Envoy binary here, architecture.md §4),
// and against tiergate: both sides of every setting they must agree on.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { compileRuntime, type Runtime } from '../../src/config/runtime.js';
import { RECOMMENDED_FILTER, SHIPPED_MESSAGE_TIMEOUT_MS } from '../../src/dev/envoy-client.js';
import { HEALTH_SERVICES } from '../../src/extproc/server.js';
import { METADATA_NAMESPACE } from '../../src/pipeline/response-answers.js';
import { USAGE_METADATA_KEYS } from '../../src/pipeline/response-accounting.js';
import { EnvoyConfigValidator } from '../helpers/envoy-config-validator.js';

const read = (rel: string) => readFileSync(fileURLToPath(new URL(`../../${rel}`, import.meta.url)), 'utf8');
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- walking parsed YAML

let validator: EnvoyConfigValidator;
let envoy: Obj;
let runtime: Runtime;
beforeAll(() => {
  validator = new EnvoyConfigValidator();
  envoy = parse(read('envoy/envoy.yaml'), { merge: true }) as Obj;
  const loaded = parseConfigText(read('envoy/tiergate.yaml'), {});
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  const compiled = compileRuntime(loaded.config, {});
  if (!compiled.ok) throw new Error(JSON.stringify(compiled.problems));
  runtime = compiled.runtime;
});

const hcm = () => envoy.static_resources.listeners[0].filter_chains[0].filters[0].typed_config as Obj;
const extProc = () => (hcm().http_filters as Obj[]).find((f) => f.name === 'envoy.filters.http.ext_proc')?.typed_config as Obj;
const cluster = (name: string) => (envoy.static_resources.clusters as Obj[]).find((c) => c.name === name) as Obj;

describe('envoy/envoy.yaml against Envoy’s protos', () => {
  it('is a valid Bootstrap: every field, enum value, Duration and typed_config checked', () => {
    expect(validator.validate(envoy)).toEqual([]);
  });

  it.each([
    ['a misspelt field', (_c: Obj) => (hcm().stat_prefx = 'x'), 'unknown field'],
    ['an unknown enum value', (_c: Obj) => (extProc().processing_mode.request_body_mode = 'BUFFER'), 'unknown value "BUFFER"'],
    ['a Duration in ms', (_c: Obj) => (extProc().message_timeout = '500ms'), 'invalid Duration'],
    ['an unknown @type', (c: Obj) => (c.static_resources.clusters[4].cluster_type.typed_config['@type'] = 'type.googleapis.com/envoy.nope.v3.X'), 'unknown @type'],
    ['a field unknown to the typed_config', (_c: Obj) => (extProc().allow_mode_overide = true), 'unknown field'],
    ['two members of a oneof', (_c: Obj) => (hcm().route_config.virtual_hosts[0].routes[1].route.weighted_clusters = { clusters: [] }), 'oneof'],
    ['a string where a number goes', (c: Obj) => (c.static_resources.listeners[0].per_connection_buffer_limit_bytes = 'big'), 'expected'],
    ["a field unknown to the tracer's config", (_c: Obj) => (hcm().tracing.provider.typed_config.service_nme = 'envoy'), 'unknown field'],
    // Its protos import OpenCensus' own, which are not here: reported, not passed unchecked.
    ['a tracer whose protos cannot be loaded', (_c: Obj) => (hcm().tracing.provider.typed_config = { '@type': 'type.googleapis.com/envoy.config.trace.v3.OpenCensusConfig' }), 'unknown'],
  ])('catches %s', (_n, mutate, message) => {
    const before = structuredClone(envoy);
    try {
      mutate(envoy);
      const problems = validator.validate(envoy);
      expect(problems.length).toBe(1);
      expect(problems[0]?.message).toContain(message);
    } finally {
      envoy = before;
    }
  });
});

describe('envoy/tiergate-tls.yaml: mutual TLS to tiergate', () => {
  const socket = () => parse(read('envoy/tiergate-tls.yaml')) as Obj;

  it('is a valid TransportSocket, and envoy.yaml with it on the tiergate cluster a valid Bootstrap', () => {
    expect(validator.validate(socket(), 'envoy.config.core.v3.TransportSocket')).toEqual([]);
    const withTls = structuredClone(envoy);
    ((withTls.static_resources.clusters as Obj[]).find((c) => c.name === 'tiergate') as Obj).transport_socket = socket();
    expect(validator.validate(withTls)).toEqual([]);
  });

  it('catches a misspelt field in it', () => {
    const bad = socket();
    bad.typed_config.common_tls_context.validation_context.trusted_cert = bad.typed_config.common_tls_context.validation_context.trusted_ca;
    expect(validator.validate(bad, 'envoy.config.core.v3.TransportSocket').map((p) => p.message)).toEqual([expect.stringContaining('unknown field')]);
  });

  it('asks for HTTP/2 by ALPN and names the host envoy.yaml dials, as tiergate certificates must', () => {
    const ctx = socket().typed_config;
    expect(ctx.common_tls_context.alpn_protocols).toEqual(['h2']);
    const dialed = cluster('tiergate').load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address;
    expect(ctx.sni).toBe(dialed);
    expect(ctx.common_tls_context.validation_context.match_typed_subject_alt_names).toEqual([{ san_type: 'DNS', matcher: { exact: dialed } }]);
  });
});

describe('envoy/envoy.yaml agrees with tiergate', () => {
  it("traces through the observability profile's collector, whose OTLP/gRPC port it names", () => {
    const tracer = hcm().tracing.provider;
    expect(tracer.name).toBe('envoy.tracers.opentelemetry');
    const collector = cluster(tracer.typed_config.grpc_service.envoy_grpc.cluster_name);
    const address = collector.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
    const compose = parse(read('docker-compose.yml')) as Obj;
    expect(compose.services[address.address]?.profiles).toEqual(['observability']);
    const otel = parse(read('observability/otel-collector.yaml')) as Obj;
    expect(otel.receivers.otlp.protocols.grpc.endpoint).toBe(`0.0.0.0:${address.port_value}`);
    expect(otel.service.pipelines.traces.receivers).toContain('otlp');
  });

  it('uses the processing mode tiergate is tested with (request BUFFERED, response STREAMED)', () => {
    const pm = extProc().processing_mode as Obj;
    const want = RECOMMENDED_FILTER.processingMode;
    expect(pm).toEqual({
      request_header_mode: want.requestHeaderMode,
      request_body_mode: want.requestBodyMode,
      request_trailer_mode: want.requestTrailerMode,
      response_header_mode: want.responseHeaderMode,
      response_body_mode: want.responseBodyMode,
      response_trailer_mode: want.responseTrailerMode,
    });
  });

  it('has the message timeout `tiergate dev` drives tiergate with', () => {
    expect(extProc().message_timeout).toBe(`${SHIPPED_MESSAGE_TIMEOUT_MS / 1000}s`);
  });

  it('allows mode overrides exactly when tiergate’s config says Envoy does', () => {
    expect(extProc().allow_mode_override).toBe(runtime.config.envoy.allowModeOverride);
  });

  it('routes every tier tiergate can set, then a catch-all that still runs the filter', () => {
    const routes = hcm().route_config.virtual_hosts[0].routes as Obj[];
    const tierValues = routes.flatMap((r) => (r.match.headers ?? []).filter((h: Obj) => h.name === 'x-llm-tier').map((h: Obj) => h.string_match.exact));
    expect(tierValues.sort()).toEqual([...runtime.tiers.keys()].sort());
    const last = routes.at(-1) as Obj;
    expect(last.match).toEqual({ prefix: '/v1/' });
    expect(last.typed_per_filter_config).toBeUndefined();
  });

  it('gives a streamed answer an hour in all (the route timeout runs until the response is complete) and ends a stalled one after 300 s idle', () => {
    const seconds = (d: string) => Number(/^(\d+)s$/.exec(d)?.[1]);
    const routes = hcm().route_config.virtual_hosts[0].routes as Obj[];
    // 300 s cut every generation longer than five minutes mid-stream.
    for (const r of routes) expect(seconds(r.route.timeout), r.name).toBe(3600);
    expect(seconds(hcm().stream_idle_timeout)).toBe(300);
  });

  it('keeps each ext_proc connection under nghttp2’s reset burst and above Envoy’s default stream cap', () => {
    const c = cluster('tiergate');
    const opts = c.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'] as Obj;
    expect(opts.explicit_http_config).toHaveProperty('http2_protocol_options');
    expect(opts.common_http_protocol_options.max_requests_per_connection).toBeLessThan(1000);
    expect(c.circuit_breakers.thresholds[0].max_requests).toBeGreaterThan(1024);
    expect(HEALTH_SERVICES).toContain(c.health_checks[0].grpc_health_check.service_name);
  });

  it('marks a draining tiergate unhealthy before it stops taking streams', () => {
    // NOT_SERVING answers at once, so the worst case is SIGTERM just after a passing check: unhealthy_threshold
    // failing checks, one interval apart. A stream opened after tiergate stopped taking them is a 500.
    const hc = cluster('tiergate').health_checks[0] as Obj;
    const seconds = (d: string) => Number(/^(\d+(?:\.\d+)?)s$/.exec(d)?.[1]);
    expect(seconds(hc.interval) * 1000 * hc.unhealthy_threshold).toBeLessThan(runtime.config.server.drainDelayMs);
  });

  it('points the filter at the tiergate cluster, receives its metadata namespace, and buffers more than tiergate’s body limit', () => {
    expect(extProc().grpc_service.envoy_grpc.cluster_name).toBe('tiergate');
    expect(cluster('tiergate').load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value).toBe(
      Number(runtime.config.server.listen.split(':').at(-1)),
    );
    expect(extProc().metadata_options.receiving_namespaces.untyped).toContain(METADATA_NAMESPACE);
    expect(envoy.static_resources.listeners[0].per_connection_buffer_limit_bytes).toBeGreaterThan(runtime.config.limits.maxRequestBodyBytes);
  });

  it('logs only dynamic metadata keys tiergate emits, in its namespace', () => {
    const format = JSON.stringify(hcm().access_log);
    const used = [...format.matchAll(/%DYNAMIC_METADATA\(([^:)]+):([^)]+)\)%/g)].map((m) => [m[1], m[2]]);
    expect(used.length).toBeGreaterThanOrEqual(4);
    for (const [ns, key] of used) {
      expect(ns).toBe(METADATA_NAMESPACE);
      expect(USAGE_METADATA_KEYS).toContain(key);
    }
  });
});
