// `tiergate ledger rollup` against a hand-worked example, from a JSONL file and from the Redis stream.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import type { LedgerRow } from '../../src/ledger/row.js';
import { sampleRow } from '../helpers/ledger-rows.js';
import { RedisServer } from '../helpers/redis-server.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli.ts'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });

const usage = (i: number, o: number) => ({ input_tokens: i, output_tokens: o, total_tokens: i + o, cached_input_tokens: 0, reasoning_tokens: 0 });
const cost = (total: number) => ({ input: 0, output: total, total, price_table_version: 't' });
const lat = (total: number) => ({ gateway: 0.1, cache_lookup: null, provider: null, total, ttft: null });
const day = (r: Partial<LedgerRow>) => sampleRow({ timestamp: '2026-11-22T09:00:00.000Z', ...r });

/** Request a's row: sent twice below (the sinks are at least once), the same row both times. */
const A = day({ request_id: 'a', tenant_id: 'acme', feature_id: 'search', tier: 'weak', usage: usage(1000, 300), cost_usd: cost(0.0002), latency_ms: lat(120), finish_reason: 'length' });

// The example, worked by hand below.
const ROWS: LedgerRow[] = [
  A,
  day({ request_id: 'b', tenant_id: 'acme', feature_id: 'search', tier: 'strong', model_resolved: 'strong-model', usage: usage(2000, 500), cost_usd: cost(0.01), latency_ms: lat(300) }),
  day({ request_id: 'c', tenant_id: 'acme', feature_id: 'chat', tier: 'weak', status: 'upstream_error', http_status: 502, usage: usage(0, 0), cost_usd: cost(0), latency_ms: lat(50) }),
  day({ request_id: 'd', tenant_id: 'beta', feature_id: null, tier: null, model_alias: null, model_resolved: null, status: 'rejected', http_status: 401, usage: usage(0, 0), cost_usd: cost(0), latency_ms: lat(1) }),
  day({ request_id: 'e', tenant_id: 'beta', feature_id: null, tier: 'weak', status: 'cancelled', usage: usage(100, 0), usage_source: 'estimated', cost_usd: cost(0.00001), latency_ms: lat(20) }),
  // Request a's row again (a replay after a write that timed out but landed): its event_id says it is counted.
  A,
  sampleRow({ request_id: 'yesterday', timestamp: '2026-11-21T23:59:59.000Z', cost_usd: cost(5) }),
  day({ request_id: 'f', tenant_id: 'beta', feature_id: null, tier: 'weak', usage: usage(10, 10), cost_usd: null, latency_ms: lat(10) }),
];

/**
 * Counted rows: a (once), b, c, d, e, f → 6 requests, 1 duplicate; routed 5 (all but d), weak 4 → 80%.
 * Cost 0.0002 + 0.01 + 0.00001 = 0.01021; per 1,000 requests 0.01021 / 6 × 1000 = 1.7016666667.
 * Errors: c → 1/6. Latencies 1, 10, 20, 50, 120, 300 → p95 (nearest rank 6 of 6) = 300.
 */
const EXPECTED = {
  day: '2026-11-22',
  from: '2026-11-22',
  to: '2026-11-22',
  requests: 6,
  duplicates: 1,
  invalid_skipped: 0,
  trimmed_before: null,
  weak_tier_share: 0.8,
  cost_usd: 0.01021,
  cost_per_1000_requests: 1.7016666667,
  error_rate: 1 / 6,
  rejected: 1,
  cancelled: 1,
  p95_latency_ms: 300,
  // No row carries a shadow decision; every routed row was decided by v7: a b c e f → weak 4/5, error c 1/5,
  // cost (0.0002 + 0.01 + 0 + 0.00001 + unpriced f) / 5 × 1000 = 2.042.
  shadow: null,
  versions: [{ classifier_version: 'v7', requests: 5, weak_tier_share: 0.8, error_rate: 0.2, cost_per_1000_requests: 2.042 }],
  // By the model that answered: b on strong; a (cut by its token cap), c, e and f on weak; d, refused before any
  // routing, names none. Weak: input 1000 + 0 + 100 + 10, output 300 + 0 + 0 + 10, cost 0.0002 + 0 + 0.00001.
  models: [
    { tier: 'strong', model: 'strong-model', requests: 1, input_tokens: 2000, output_tokens: 500, cost_usd: 0.01, saved_usd: 0, unpriced: 0, cut_short: 0 },
    { tier: 'weak', model: 'weak-model', requests: 4, input_tokens: 1110, output_tokens: 310, cost_usd: 0.00021, saved_usd: 0, unpriced: 1, cut_short: 1 },
  ],
  service_tiers: [], // no answer named one
  tool_calls: [], // nor made a hosted tool call
  tool_calls_cost_usd: 0,
  groups: [
    { tenant_id: 'acme', feature_id: 'search', requests: 2, input_tokens: 3000, output_tokens: 800, total_tokens: 3800, cost_usd: 0.0102, saved_usd: 0, cache_hits: 0, unpriced: 0 },
    { tenant_id: 'beta', feature_id: null, requests: 3, input_tokens: 110, output_tokens: 10, total_tokens: 120, cost_usd: 0.00001, saved_usd: 0, cache_hits: 0, unpriced: 1 },
    { tenant_id: 'acme', feature_id: 'chat', requests: 1, input_tokens: 0, output_tokens: 0, total_tokens: 0, cost_usd: 0, saved_usd: 0, cache_hits: 0, unpriced: 0 },
  ],
};

let redis: RedisServer;
beforeAll(async () => {
  redis = await RedisServer.start();
});
afterAll(async () => redis.down());

describe('tiergate ledger rollup', () => {
  it('matches the hand-worked example from a JSONL file (--json)', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tiergate-rollup-')), 'ledger.jsonl');
    writeFileSync(file, ROWS.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const r = cli(['ledger', 'rollup', '--day', '2026-11-22', '--file', file, '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(EXPECTED);
  });

  it('matches it from the Redis stream too, and prints a readable table', async () => {
    const c = redis.client();
    for (const row of ROWS) await c.xadd('rollup:ledger', '*', 'event_id', row.event_id, 'row', JSON.stringify(row));
    c.disconnect();
    const json = cli(['ledger', 'rollup', '--day', '2026-11-22', '--redis', redis.url, '--stream', 'rollup:ledger', '--json']);
    expect(JSON.parse(json.stdout)).toEqual(EXPECTED);
    const text = cli(['ledger', 'rollup', '--day', '2026-11-22', '--redis', redis.url, '--stream', 'rollup:ledger']).stdout;
    expect(text).toContain('requests              6 (1 duplicate rows ignored)');
    expect(text).toContain('weak-tier share       80.0%');
    expect(text).toContain('p95 latency           300.0 ms');
    expect(text).toMatch(/acme\s+search\s+2\s+3000\s+800\s+0\.010200/);
    expect(text).toContain('    weak    weak-model          4 requests   cost $0.000210   cut short 1 (25.0%)   unpriced 1');
    // The README shows this example's report: it is the report, line for line.
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const shown = /A day's report:\n\n```\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(shown).toBe(text);
  });

  it("without --stream, reads the stream a redis sink writes when its config names none", async () => {
    const sink = configSchema.parse({ ledger: { sinks: [{ type: 'redis', url: redis.url }] } }).ledger.sinks[0];
    if (sink?.type !== 'redis') throw new Error('expected the redis sink');
    const c = redis.client();
    for (const row of ROWS) await c.xadd(sink.stream, '*', 'event_id', row.event_id, 'row', JSON.stringify(row));
    c.disconnect();
    const r = cli(['ledger', 'rollup', '--day', '2026-11-22', '--redis', redis.url, '--json']);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(r.stdout)).toEqual(EXPECTED);
  });

  it('a Redis it cannot reach: exits 1 naming where and why, without the password, instead of retrying for ever', async () => {
    // A closed port: before, ioredis reconnected for ever and the command never ended ("[ioredis] Unhandled error
    // event" every second); spawnSync's 20 s timeout would kill it here.
    const closed = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as AddressInfo;
        srv.close(() => resolve(port));
      });
    });
    const r = cli(['ledger', 'rollup', '--day', '2026-11-22', '--redis', `redis://:s3cret@127.0.0.1:${closed}`]);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`could not read the ledger from Redis at redis://:***@127.0.0.1:${closed}: connect ECONNREFUSED`);
    expect(r.stderr).not.toContain('s3cret');
    expect(r.stderr).not.toContain('Unhandled error event');
  });

  it('--logs reads the stdout sink\'s rows out of container logs (CRI files, kubectl logs) and the rows logged for import, passing over the other records', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-rollup-logs-'));
    const record = (event: string, more: object = {}) => JSON.stringify({ level: 'info', time: '2026-11-22T09:00:00.000Z', service: 'tiergate', event, ...more });
    const rows = ROWS.map((r) => JSON.stringify(r));
    // One pod's file as the container runtime keeps it, and another's as `kubectl logs` prints it; between the
    // rows, tiergate's own records and stray output. Records that carry rows for import (as escaped strings)
    // count too: one holds row 1 again (the redis sink's copy: a duplicate), one holds row 7, which the stdout
    // sink's full spool refused, so it is only there.
    const cri = (line: string, i: number) => `2026-11-22T09:00:0${i % 10}.000000001Z stdout F ${line}`;
    const pod1 = [record('server.started'), ...rows.slice(0, 4), record('ledger.rows_unsaved', { sink: 'redis', count: 1, rows: [rows[1]] }), 'npm warn config production'].map(cri);
    const pod2 = [
      record('server.started'),
      ...rows.slice(4, 7),
      record('ledger.rows_unsaved', { sink: 'stdout', reason: 'spool_full', count: 1, rows: [rows[7]] }),
      record('server.stopped'),
      '{ not json, only braces',
    ];
    writeFileSync(join(dir, 'pod1.log'), `${pod1.join('\n')}\n`);
    writeFileSync(join(dir, 'pod2.log'), `${pod2.join('\n')}\n`);
    const r = cli(['ledger', 'rollup', '--day', '2026-11-22', '--logs', join(dir, 'pod1.log'), join(dir, 'pod2.log'), '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ ...EXPECTED, duplicates: EXPECTED.duplicates + 1 });
    // A row the log pipeline damaged is named, as in a ledger file.
    writeFileSync(join(dir, 'pod3.log'), `${cri(rows[0]?.slice(0, 60) ?? '', 0)}\n`);
    const damaged = cli(['ledger', 'rollup', '--day', '2026-11-22', '--logs', join(dir, 'pod3.log')]);
    expect(damaged.status).toBe(1);
    expect(damaged.stderr).toContain(`${join(dir, 'pod3.log')}:1: not JSON`);
    expect(cli(['ledger', 'rollup', '--day', '2026-11-22', '--logs']).stderr).toContain('--logs: name the log files to read');
    // A directory of logs is named as one (it said "no such file"), and so is a log that is missing.
    expect(cli(['ledger', 'rollup', '--day', '2026-11-22', '--logs', dir])).toMatchObject({ status: 2, stderr: `${dir}: a directory, not a log file\n` });
    expect(cli(['ledger', 'rollup', '--day', '2026-11-22', '--logs', join(dir, 'pod9.log')]).stderr).toBe(`${join(dir, 'pod9.log')}: no such file\n`);
  });

  it('--logs reads Docker json-file logs too (docker compose\'s default, and what Fluent Bit forwards): the row is the entry\'s "log"', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-rollup-docker-'));
    const docker = (line: string, i: number) => JSON.stringify({ log: `${line}\n`, stream: 'stdout', time: `2026-11-22T09:00:0${i % 10}.000000001Z` });
    const rows = ROWS.map((r) => JSON.stringify(r));
    const record = (event: string, more: object = {}) => JSON.stringify({ level: 'info', time: '2026-11-22T09:00:00.000Z', service: 'tiergate', event, ...more });
    // As /var/lib/docker/containers/<id>/<id>-json.log holds it, a record logged for the redis sink's import
    // among the rows (row 1 again: a duplicate), and as `docker compose logs` prints it.
    const entries = [record('server.started'), ...rows, record('ledger.rows_unsaved', { sink: 'redis', count: 1, rows: [rows[1]] })].map(docker);
    writeFileSync(join(dir, 'container-json.log'), `${entries.join('\n')}\n`);
    writeFileSync(join(dir, 'compose.log'), `${rows.map((l) => `tiergate-1  | ${l}`).join('\n')}\n`);
    const fromJsonFile = cli(['ledger', 'rollup', '--day', '2026-11-22', '--logs', join(dir, 'container-json.log'), '--json']);
    expect([fromJsonFile.status, fromJsonFile.stderr]).toEqual([0, '']);
    expect(JSON.parse(fromJsonFile.stdout)).toEqual({ ...EXPECTED, duplicates: EXPECTED.duplicates + 1 });
    const fromCompose = cli(['ledger', 'rollup', '--day', '2026-11-22', '--logs', join(dir, 'compose.log'), '--json']);
    expect(JSON.parse(fromCompose.stdout)).toEqual(EXPECTED);
  });

  it('compressed logs and day files (gzip, as archives and log rotation keep them) are read as the plain ones', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-rollup-gz-'));
    const rows = `${ROWS.map((r) => JSON.stringify(r)).join('\n')}\n`;
    const cri = rows.split('\n').filter(Boolean).map((l, i) => `2026-11-22T09:00:0${i}.000000001Z stdout F ${l}`).join('\n');
    // A rotated pod log (named .gz, or not: the content says it is gzip), and a ledger directory whose day file
    // was compressed.
    writeFileSync(join(dir, 'pod.log.1.gz'), gzipSync(`${cri}\n`));
    writeFileSync(join(dir, 'pod-archive'), gzipSync(`${cri}\n`));
    mkdirSync(join(dir, 'ledger'));
    writeFileSync(join(dir, 'ledger', 'ledger-2026-11-22.jsonl.gz'), gzipSync(rows));
    for (const args of [['--logs', join(dir, 'pod.log.1.gz')], ['--logs', join(dir, 'pod-archive')], ['--file', join(dir, 'ledger')], ['--file', join(dir, 'ledger', 'ledger-2026-11-22.jsonl.gz')]]) {
      const r = cli(['ledger', 'rollup', '--day', '2026-11-22', ...args, '--json']);
      expect([r.status, r.stderr], args.join(' ')).toEqual([0, '']);
      expect(JSON.parse(r.stdout), args.join(' ')).toEqual(EXPECTED);
    }
    // One cut short (a copy that did not finish): an error naming it, not the rows before the cut summed as all.
    const whole = gzipSync(`${cri}\n`);
    writeFileSync(join(dir, 'cut.log.gz'), whole.subarray(0, whole.length - 12));
    const cut = cli(['ledger', 'rollup', '--day', '2026-11-22', '--logs', join(dir, 'cut.log.gz')]);
    expect([cut.status, cut.stdout]).toEqual([1, '']);
    expect(cut.stderr).toBe(`tiergate ledger rollup: ${join(dir, 'cut.log.gz')}: unexpected end of file\n`);
  });

  it('a request id used again (a client that reuses its x-request-id, or names another tenant\'s) is another request: each one counts', () => {
    const at = (over: Partial<LedgerRow>) => day({ request_id: 'same-id', tier: 'weak', cost_usd: cost(1), latency_ms: lat(10), ...over });
    const first = at({ tenant_id: 'acme', usage: usage(10, 10) });
    // Three calls of one app request that passed its own x-request-id on, and another tenant naming that id.
    const rows = [first, at({ tenant_id: 'acme', usage: usage(20, 20) }), at({ tenant_id: 'acme', usage: usage(30, 30) }), at({ tenant_id: 'beta', usage: usage(1, 1) }), first];
    const file = join(mkdtempSync(join(tmpdir(), 'tiergate-rollup-ids-')), 'ledger.jsonl');
    writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n'));
    const out = JSON.parse(cli(['ledger', 'rollup', '--file', file, '--json']).stdout);
    // Only the row sent twice (the same event_id) is one request; before, the four requests counted as one, beta's.
    expect([out.requests, out.duplicates, out.cost_usd]).toEqual([4, 1, 4]);
    expect(out.groups).toEqual([
      expect.objectContaining({ tenant_id: 'acme', requests: 3, input_tokens: 60, output_tokens: 60, cost_usd: 3 }),
      expect.objectContaining({ tenant_id: 'beta', requests: 1, cost_usd: 1 }),
    ]);
  });

  it('by service tier: requests, cost and unpriced rows per tier an answer named; older rows without the field count elsewhere only', () => {
    const old = day({ request_id: 'old', cost_usd: cost(0.5) }) as Partial<LedgerRow>;
    delete old.service_tier; // a row written before the column existed
    const rows = [
      day({ request_id: 'p1', service_tier: 'priority', cost_usd: cost(0.0035) }),
      day({ request_id: 'p2', service_tier: 'priority', cost_usd: cost(0.0015) }),
      day({ request_id: 'p3', service_tier: 'priority', cost_usd: null }), // a tier its model's prices do not list
      day({ request_id: 'd1', service_tier: 'default', cost_usd: cost(0.002) }),
      day({ request_id: 'f1', service_tier: 'flex', cost_usd: cost(0.0001) }),
      day({ request_id: 'none', service_tier: null, cost_usd: cost(0.25) }),
      old,
    ];
    const file = join(mkdtempSync(join(tmpdir(), 'tiergate-rollup-tiers-')), 'ledger.jsonl');
    writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const json = cli(['ledger', 'rollup', '--day', '2026-11-22', '--file', file, '--json']);
    expect(json.stderr).toBe('');
    const r = JSON.parse(json.stdout) as { requests: number; cost_usd: number; service_tiers: unknown[] };
    expect(r.requests).toBe(7);
    expect(r.cost_usd).toBe(0.7571);
    expect(r.service_tiers).toEqual([
      { service_tier: 'priority', requests: 3, cost_usd: 0.005, unpriced: 1 },
      { service_tier: 'default', requests: 1, cost_usd: 0.002, unpriced: 0 },
      { service_tier: 'flex', requests: 1, cost_usd: 0.0001, unpriced: 0 },
    ]);
    const text = cli(['ledger', 'rollup', '--day', '2026-11-22', '--file', file]).stdout;
    expect(text).toContain('  by service tier\n    priority            3 requests   cost $0.005000   unpriced 1\n    default             1 requests   cost $0.002000\n');
  });

  it('a row without a price is unpriced whatever it counted: usage nobody measured has no tokens to show', () => {
    const rows = [
      // A plain-text transcript: no usage, nothing tiergate could count, so no price.
      day({ request_id: 'unmeasured', tenant_id: 'acme', feature_id: null, service_tier: 'default', usage: usage(0, 0), usage_source: 'estimated', cost_usd: null }),
      day({ request_id: 'priced', tenant_id: 'acme', feature_id: null, service_tier: 'default', usage: usage(10, 10), cost_usd: cost(0.001) }),
    ];
    const file = join(mkdtempSync(join(tmpdir(), 'tiergate-rollup-unmeasured-')), 'ledger.jsonl');
    writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const r = JSON.parse(cli(['ledger', 'rollup', '--day', '2026-11-22', '--file', file, '--json']).stdout) as { groups: unknown[]; service_tiers: unknown[] };
    expect(r.groups).toEqual([expect.objectContaining({ tenant_id: 'acme', requests: 2, cost_usd: 0.001, unpriced: 1 })]);
    expect(r.service_tiers).toEqual([{ service_tier: 'default', requests: 2, cost_usd: 0.001, unpriced: 1 }]);
  });

  it('hosted tool calls: calls and requests per type, and what the priced ones cost; rows without the field count elsewhere only', () => {
    const tools = (calls: Record<string, unknown> | null, total: number, toolCost?: number) => ({ ...(calls === null ? {} : { tool_calls: calls }), cost_usd: { input: 0, output: 0, ...(toolCost === undefined ? {} : { tool_calls: toolCost }), total, price_table_version: 't' } }) as Partial<LedgerRow>;
    const rows = [
      day({ request_id: 's1', ...tools({ web_search_call: 3 }, 0.032, 0.03) }),
      day({ request_id: 's2', ...tools({ web_search_call: 1, file_search_call: 2 }, 0.02, 0.015) }),
      day({ request_id: 'm1', ...tools({ mcp_call: 4 }, 0.001) }), // counted, not priced
      day({ request_id: 'bad', ...tools({ web_search_call: -2, x_call: 'many' }, 0.001) }), // a hand-edited row: nothing to take
      day({ request_id: 'none', ...tools(null, 0.5) }),
    ];
    const file = join(mkdtempSync(join(tmpdir(), 'tiergate-rollup-tools-')), 'ledger.jsonl');
    writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const json = cli(['ledger', 'rollup', '--day', '2026-11-22', '--file', file, '--json']);
    expect(json.stderr).toBe('');
    const r = JSON.parse(json.stdout) as { requests: number; cost_usd: number; tool_calls: unknown[]; tool_calls_cost_usd: number };
    expect([r.requests, r.cost_usd]).toEqual([5, 0.554]);
    expect(r.tool_calls).toEqual([
      { type: 'mcp_call', calls: 4, requests: 1 },
      { type: 'web_search_call', calls: 4, requests: 2 },
      { type: 'file_search_call', calls: 2, requests: 1 },
    ]);
    expect(r.tool_calls_cost_usd).toBe(0.045);
    const text = cli(['ledger', 'rollup', '--day', '2026-11-22', '--file', file]).stdout;
    expect(text).toContain('  hosted tool calls      cost $0.045000\n    mcp_call                    4 calls in 1 requests\n    web_search_call             4 calls in 2 requests\n');
  });

  it('shadow agreement, each direction of disagreement, the weak share under the shadow, and the canary beside the active version', () => {
    const row = (id: string, version: string, tier: string | null, shadow: string | null, over: Partial<LedgerRow> = {}) =>
      day({ request_id: id, classifier_version: version, classifier_rule: tier === null ? null : 'default', tier, shadow_tier: shadow, shadow_reason: shadow && `v8 ${shadow}`, cost_usd: cost(0.001), ...over });
    const rows = [
      row('1', 'v7', 'weak', 'weak'),
      row('2', 'v7', 'weak', 'strong'),
      row('3', 'v7', 'strong', 'strong'),
      row('4', 'v7', 'strong', 'weak'),
      row('5', 'v7', 'weak', 'weak', { status: 'upstream_error', http_status: 500 }),
      row('6', 'v8', 'weak', 'weak'),
      row('7', 'v8', 'strong', 'strong'),
      // An alias route: no classifier rule, no shadow; it still counts in the weak-tier shares.
      row('8', 'alias', 'weak', null, { classifier_rule: null }),
    ];
    const file = join(mkdtempSync(join(tmpdir(), 'tiergate-rollup-shadow-')), 'ledger.jsonl');
    writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n'));
    const r = cli(['ledger', 'rollup', '--file', file, '--json']);
    const out = JSON.parse(r.stdout);
    // Shadowed rows 1–7: agree 1 3 5 6 7 → 5/7; weak→strong (2), strong→weak (4).
    // Weak share as routed: 1 2 5 6 8 of 8 = 62.5%; under the shadow: 1 4 5 6 8 = 62.5% too (one each way).
    expect(out.weak_tier_share).toBe(0.625);
    expect(out.shadow).toEqual({ rows: 7, agreement_rate: 5 / 7, disagreements: { 'weak->strong': 1, 'strong->weak': 1 }, weak_tier_share: 0.625 });
    expect(out.versions).toEqual([
      { classifier_version: 'v7', requests: 5, weak_tier_share: 0.6, error_rate: 0.2, cost_per_1000_requests: 1 },
      { classifier_version: 'v8', requests: 2, weak_tier_share: 0.5, error_rate: 0, cost_per_1000_requests: 1 },
    ]);
    const text = cli(['ledger', 'rollup', '--file', file]).stdout;
    expect(text).toContain('shadow classifier     agreement 71.4% over 7 rows (disagree: weak->strong 1, strong->weak 1)');
    expect(text).toContain('weak-tier share under the shadow 62.5%');
    expect(text).toMatch(/v8\s+2 requests\s+weak 50\.0%/);
  });

  describe('periods of several days, and CSV', () => {
    // November 21 and 22 are the example above; November 23 adds four rows; October 31 and December 1 are outside.
    const nov23 = (r: Partial<LedgerRow>) => sampleRow({ timestamp: '2026-11-23T10:00:00.000Z', latency_ms: lat(400), ...r });
    /** Request h's row, delivered twice. */
    const H = nov23({ request_id: 'h', tenant_id: 'gamma', feature_id: 'a,"b"', tier: 'strong', usage: usage(1, 1), cost_usd: cost(0.003) });
    const NEXT_DAY: LedgerRow[] = [
      nov23({ request_id: 'g', tenant_id: 'acme', feature_id: 'search', tier: 'weak', usage: usage(100, 50), cost_usd: cost(0.001) }),
      // The same request id as a November 22 request: another request (another row), counted too.
      nov23({ request_id: 'b', tenant_id: 'gamma', feature_id: '=HYPERLINK("x")', tier: 'strong', usage: usage(10, 10), cost_usd: cost(0.002) }),
      H,
      H,
    ];
    const OUTSIDE = [sampleRow({ request_id: 'oct', timestamp: '2026-10-31T23:59:59.999Z', cost_usd: cost(7) }), sampleRow({ request_id: 'dec', timestamp: '2026-12-01T00:00:00.000Z', cost_usd: cost(9) })];
    /**
     * The example's 6 requests and 1 duplicate, its November 21 row (weak, $5), then g, b (again, another day), h
     * (twice): 10 requests, 2 duplicates. Cost 0.01021 + 5 + 0.001 + 0.002 + 0.003 = 5.01621; per 1,000 requests
     * 501.621. Routed 5 + 1 + 3, weak 4 + 1 + 1 → 6/9. Errors: c → 1/10. p95 is rank 10 of 10: 400.
     */
    const MONTH = {
      day: null,
      from: '2026-11-01',
      to: '2026-11-30',
      requests: 10,
      duplicates: 2,
      invalid_skipped: 0,
      trimmed_before: null,
      weak_tier_share: 6 / 9,
      cost_usd: 5.01621,
      cost_per_1000_requests: 501.621,
      error_rate: 1 / 10,
      rejected: 1,
      cancelled: 1,
      p95_latency_ms: 400,
      shadow: null,
      // The example's by model, plus: November 21's row and g on weak (input 1110 + 10 + 100, output 310 + 5 + 50,
      // cost 0.00021 + 5 + 0.001); b and h on strong, answered by weak-model (sampleRow's), 0.002 + 0.003.
      models: [
        { tier: 'weak', model: 'weak-model', requests: 6, input_tokens: 1220, output_tokens: 365, cost_usd: 5.00121, saved_usd: 0, unpriced: 1, cut_short: 1 },
        { tier: 'strong', model: 'strong-model', requests: 1, input_tokens: 2000, output_tokens: 500, cost_usd: 0.01, saved_usd: 0, unpriced: 0, cut_short: 0 },
        { tier: 'strong', model: 'weak-model', requests: 2, input_tokens: 11, output_tokens: 11, cost_usd: 0.005, saved_usd: 0, unpriced: 0, cut_short: 0 },
      ],
      service_tiers: [],
      tool_calls: [],
      tool_calls_cost_usd: 0,
    };
    let dir: string;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'tiergate-rollup-month-'));
      const byDay = new Map<string, LedgerRow[]>();
      for (const r of [...ROWS, ...NEXT_DAY, ...OUTSIDE]) byDay.set(r.timestamp.slice(0, 10), [...(byDay.get(r.timestamp.slice(0, 10)) ?? []), r]);
      for (const [d, rows] of byDay) writeFileSync(join(dir, `ledger-${d}.jsonl`), rows.map((r) => JSON.stringify(r)).join('\n'));
      const c = redis.client();
      for (const row of [...OUTSIDE, ...ROWS, ...NEXT_DAY]) await c.xadd('rollup:month', '*', 'event_id', row.event_id, 'row', JSON.stringify(row));
      c.disconnect();
    });

    it('--month and --from/--to from a ledger directory, the Redis stream and log files: each day deduplicated, then summed', () => {
      // As log files, the day files are read by each day only where they hold its date (datesInLogs).
      const logs = readdirSync(dir).map((f) => join(dir, f));
      for (const args of [
        ['--month', '2026-11', '--file', dir],
        ['--from', '2026-11-01', '--to', '2026-11-30', '--file', dir],
        ['--month', '2026-11', '--redis', redis.url, '--stream', 'rollup:month'],
        ['--month', '2026-11', '--logs', ...logs],
      ]) {
        const r = cli(['ledger', 'rollup', ...args, '--json']);
        // The directory holds the files of November 21–23 only: the other days are summed as empty, and said to be.
        expect(r.stderr).toBe(args.includes('--file') ? `${dir}: no ledger-YYYY-MM-DD.jsonl for 27 of the period's 30 days (2026-11-01, 2026-11-02, … 2026-11-30): summed as days without rows\n` : '');
        const { groups, versions: _v, ...figures } = JSON.parse(r.stdout) as { groups: Array<{ tenant_id: string; feature_id: string | null; requests: number; cost_usd: number }>; versions: unknown };
        expect(figures).toEqual(MONTH);
        expect(groups.map((g) => [g.tenant_id, g.feature_id, g.requests, g.cost_usd])).toEqual([
          ['default', null, 1, 5],
          ['acme', 'search', 3, 0.0112],
          ['gamma', 'a,"b"', 1, 0.003],
          ['gamma', '=HYPERLINK("x")', 1, 0.002],
          ['beta', null, 3, 0.00001],
          ['acme', 'chat', 1, 0],
        ]);
      }
      const oneDay = JSON.parse(cli(['ledger', 'rollup', '--from', '2026-11-23', '--to', '2026-11-23', '--file', dir, '--json']).stdout);
      expect([oneDay.day, oneDay.requests, oneDay.duplicates]).toEqual(['2026-11-23', 3, 1]);
      expect(cli(['ledger', 'rollup', '--month', '2026-11', '--file', dir]).stdout).toContain('ledger rollup for 2026-11-01 to 2026-11-30');
    });

    it('--csv: the tenant × feature table for a spreadsheet, quoted per RFC 4180, names never run as formulas', () => {
      const r = cli(['ledger', 'rollup', '--month', '2026-11', '--file', dir, '--csv']);
      expect(r.status).toBe(0);
      expect(r.stdout.split('\r\n')).toEqual([
        'from,to,tenant_id,feature_id,requests,input_tokens,output_tokens,total_tokens,cost_usd,saved_usd,cache_hits,unpriced',
        '2026-11-01,2026-11-30,default,,1,10,5,15,5.000000,0.000000,0,0',
        '2026-11-01,2026-11-30,acme,search,3,3100,850,3950,0.011200,0.000000,0,0',
        '2026-11-01,2026-11-30,gamma,"a,""b""",1,1,1,2,0.003000,0.000000,0,0',
        `2026-11-01,2026-11-30,gamma,"'=HYPERLINK(""x"")",1,10,10,20,0.002000,0.000000,0,0`,
        '2026-11-01,2026-11-30,beta,,3,110,10,120,0.000010,0.000000,0,1',
        '2026-11-01,2026-11-30,acme,chat,1,0,0,0,0.000000,0.000000,0,0',
        '',
      ]);
    });

    it('explains a bad period', () => {
      for (const [args, message] of [
        [['--month', '2026-13'], '--month must be YYYY-MM, got 2026-13'],
        [['--day', '2026-02-30'], '--day must be YYYY-MM-DD, got 2026-02-30'],
        [['--from', '2026-11-01'], '--from and --to go together'],
        [['--from', '2026-11-02', '--to', '2026-11-01'], '--from 2026-11-02 is after --to 2026-11-01'],
        [['--day', '2026-11-22', '--month', '2026-11'], 'name one period: --day, --month, or --from and --to'],
        [['--json', '--csv', '--day', '2026-11-22'], '--json and --csv: choose one'],
        [[], `${dir} is a directory: name a period (--day, --month or --from/--to) to read its ledger-YYYY-MM-DD.jsonl files`],
      ] as const) {
        const r = cli(['ledger', 'rollup', ...args, '--file', dir]);
        expect([r.status, r.stderr]).toEqual([2, `${message}\n`]);
      }
    });
  });

  it('reads the day file of a ledger directory, and explains bad arguments', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-rollup-dir-'));
    writeFileSync(join(dir, 'ledger-2026-11-22.jsonl'), ROWS.map((r) => JSON.stringify(r)).join('\n'));
    expect(JSON.parse(cli(['ledger', 'rollup', '--day', '2026-11-22', '--file', dir, '--json']).stdout).requests).toBe(6);
    const bad = cli(['ledger', 'rollup', '--day', '22/11/2026', '--file', dir]);
    expect([bad.status, bad.stderr]).toEqual([2, '--day must be YYYY-MM-DD, got 22/11/2026\n']);
    expect(cli(['ledger', 'rollup', '--day', '2026-11-22']).status).toBe(2);
  });

  it('a source that cannot hold the period says so: a directory without its day files (a note), a stream that does not exist (exit 1)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-rollup-none-'));
    writeFileSync(join(dir, 'ledger-2026-11-22.jsonl'), ROWS.map((r) => JSON.stringify(r)).join('\n'));
    // A misnamed directory or a period with no file: a report of nothing, which stderr explains.
    const none = cli(['ledger', 'rollup', '--day', '2026-11-21', '--file', dir, '--json']);
    expect([none.status, JSON.parse(none.stdout).requests, none.stderr]).toEqual([0, 0, `${dir}: no ledger-2026-11-21.jsonl for 2026-11-21: summed as a day without rows\n`]);
    const week = cli(['ledger', 'rollup', '--from', '2026-11-20', '--to', '2026-11-23', '--file', dir, '--json']);
    expect([week.status, JSON.parse(week.stdout).requests]).toEqual([0, 6]);
    expect(week.stderr).toBe(`${dir}: no ledger-YYYY-MM-DD.jsonl for 3 of the period's 4 days (2026-11-20, 2026-11-21, 2026-11-23): summed as days without rows\n`);
    expect(cli(['ledger', 'rollup', '--from', '2026-11-22', '--to', '2026-11-22', '--file', dir]).stderr).toBe('');
    // A misspelt --stream read as an empty ledger: a report of $0 that exited 0.
    const r = cli(['ledger', 'rollup', '--day', '2026-11-22', '--redis', redis.url, '--stream', 'tiergate:ledgr']);
    expect([r.status, r.stdout]).toEqual([1, '']);
    expect(r.stderr).toMatch(/^tiergate ledger rollup: redis:\/\/\S+ holds no stream "tiergate:ledgr", so nothing was summed: is --stream, or the database in the URL, the one the redis sink writes to\?\n$/);
  });

  it('skips a torn last line (a crash mid-append) with a warning; a garbled line anywhere else is an error naming it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-rollup-torn-'));
    const lines = ROWS.map((r) => JSON.stringify(r));
    const file = join(dir, 'ledger-2026-11-22.jsonl');
    writeFileSync(file, `${lines.join('\n')}\n${lines[0]?.slice(0, 40)}`);
    const r = cli(['ledger', 'rollup', '--day', '2026-11-22', '--file', dir, '--json']);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).requests).toBe(6); // before: no report at all
    expect(r.stderr).toBe(`${file}:9: a torn last line (an append cut short by a crash) was skipped\n`);
    writeFileSync(file, `${lines[0]}\n${lines[1]?.slice(0, 40)}\n${lines[2]}\n`);
    const bad = cli(['ledger', 'rollup', '--day', '2026-11-22', '--file', dir]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain(`${file}:2: not JSON\nNothing was summed.`);
    expect(bad.stdout).toBe('');
  });

  it('a line that is JSON but not a ledger row stops the rollup, naming it; --skip-invalid sums the rest and says so', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-rollup-invalid-'));
    const file = join(dir, 'ledger-2026-11-22.jsonl');
    const lines = ROWS.map((r) => JSON.stringify(r));
    const { usage: _dropped, ...noUsage } = ROWS[1] as LedgerRow;
    // Line 2: a row without its usage; 4: an object; 6: not JSON; 8: a row whose cost is a string.
    const body = [lines[0], JSON.stringify(noUsage), lines[2], '{"level":30,"msg":"pasted log line"}', lines[3], '{"request_id": ', lines[4], JSON.stringify({ ...ROWS[5], cost_usd: { total: '0.1' } }), lines[6], lines[7]];
    writeFileSync(file, `${body.join('\n')}\n`);
    // Before: a TypeError ("Cannot read properties of undefined (reading 'input_tokens')") named no line.
    const stopped = cli(['ledger', 'rollup', '--day', '2026-11-22', '--file', dir, '--json']);
    expect(stopped.status).toBe(1);
    expect(stopped.stdout).toBe('');
    expect(stopped.stderr).toBe(`${file}:2: not a ledger row (usage: Invalid input: expected object, received undefined)\nNothing was summed. --skip-invalid sums the rest and says how many lines it left out.\n`);

    const skipped = cli(['ledger', 'rollup', '--day', '2026-11-22', '--file', dir, '--json', '--skip-invalid']);
    expect(skipped.status).toBe(0);
    expect(skipped.stderr.trim().split('\n')).toEqual([
      `${file}:2: not a ledger row (usage: Invalid input: expected object, received undefined): skipped`,
      `${file}:4: not a ledger row (timestamp: Invalid input: expected string, received undefined): skipped`,
      `${file}:6: not JSON: skipped`,
      `${file}:8: not a ledger row (cost_usd.total: Invalid input: expected number, received string): skipped`,
    ]);
    const sums = JSON.parse(skipped.stdout) as { requests: number; invalid_skipped: number };
    // The rows left are those of lines 1, 3, 5, 7, 9 and 10 (ROWS 0, 2, 3, 4, 6, 7), summed as ever.
    const expected = JSON.parse(cli(['ledger', 'rollup', '--day', '2026-11-22', '--file', writeRows(dir, [0, 2, 3, 4, 6, 7]), '--json']).stdout) as object;
    expect(sums).toEqual({ ...expected, invalid_skipped: 4 });
    const text = cli(['ledger', 'rollup', '--day', '2026-11-22', '--file', dir, '--skip-invalid']).stdout;
    expect(text).toContain('INCOMPLETE            4 lines that are not ledger rows were skipped (listed on stderr)');
  });

  it('a stream its maxLen trimmed past the period\'s start stops the rollup, naming what is lost; --allow-trimmed sums the rest and says so', async () => {
    const c = redis.client();
    const at = (iso: string) => `${Date.parse(iso)}-0`;
    const s = 'rollup:trimmed';
    // Three rows of 22 November added that day; the sink's MAXLEN then trims the first two away.
    for (const [i, t] of ['10:00', '11:00', '12:00'].entries()) {
      await c.xadd(s, at(`2026-11-22T${t}:00.000Z`), 'event_id', `t${i}`, 'row', JSON.stringify(day({ request_id: `t${i}` })));
    }
    // A row of 24 November whose entry id is 1.5 s before that day: a Redis clock behind tiergate's.
    const early = sampleRow({ request_id: 'early', timestamp: '2026-11-24T00:00:00.500Z' });
    await c.xadd(s, at('2026-11-23T23:59:59.000Z'), 'event_id', early.event_id, 'row', JSON.stringify(early));
    await c.xtrim(s, 'MAXLEN', 2);
    c.disconnect();
    const lost = '2026-11-22T12:00:00.000Z'; // the first entry left

    const args = ['ledger', 'rollup', '--redis', redis.url, '--stream', s, '--json'];
    const stopped = cli([...args, '--month', '2026-11']);
    expect(stopped.status).toBe(1);
    expect(stopped.stdout).toBe('');
    expect(stopped.stderr).toContain(`${s} has lost the entries added before ${lost} (trimmed by the redis sink's maxLen): rows of 2026-11-01 to 2026-11-22 may be missing from it`);
    expect(stopped.stderr).toContain('Nothing was summed.');
    expect(cli([...args, '--day', '2026-11-22']).stderr).toContain('rows of 2026-11-22 may be missing from it');

    const allowed = cli([...args, '--day', '2026-11-22', '--allow-trimmed']);
    expect(allowed.status).toBe(0);
    expect(JSON.parse(allowed.stdout)).toMatchObject({ requests: 1, trimmed_before: lost });
    // Summed all the same, the loss is still said on stderr, not only in the output's own field.
    expect(allowed.stderr).toBe(`${s} has lost the entries added before ${lost} (trimmed by the redis sink's maxLen): rows of 2026-11-22 may be missing from it, so the totals would be too low.\n`);
    expect(cli(['ledger', 'rollup', '--redis', redis.url, '--stream', s, '--day', '2026-11-22', '--allow-trimmed']).stdout).toContain(
      `INCOMPLETE            the Redis stream has lost the entries added before ${lost} (trimmed: maxLen)`,
    );
    // A later day the trimming did not reach sums as ever; its first row, added under the day before's id, too.
    const later = cli([...args, '--day', '2026-11-24']);
    expect(later.stderr).toBe('');
    expect(JSON.parse(later.stdout)).toMatchObject({ requests: 1, trimmed_before: null });
    // Without a period: the whole stream, which has lost entries.
    expect(cli(['ledger', 'rollup', '--redis', redis.url, '--stream', s, '--json']).stderr).toContain('rows added before then are missing from it');
  });

  it('a Redis stream entry that is not a ledger row is named by its id, or skipped with --skip-invalid', async () => {
    const c = redis.client();
    await c.xadd('rollup:invalid', '*', 'event_id', 'e1', 'row', JSON.stringify(ROWS[0]));
    const id = await c.xadd('rollup:invalid', '*', 'event_id', 'e2', 'row', '{"not": "a row"}');
    await c.xadd('rollup:invalid', '*', 'event_id', 'e3', 'row', JSON.stringify(ROWS[2]));
    c.disconnect();
    const args = ['ledger', 'rollup', '--day', '2026-11-22', '--redis', redis.url, '--stream', 'rollup:invalid', '--json'];
    const stopped = cli(args);
    expect(stopped.status).toBe(1);
    expect(stopped.stderr).toContain(`rollup:invalid entry ${id}: not a ledger row (timestamp:`);
    const skipped = cli([...args, '--skip-invalid']);
    expect(skipped.status).toBe(0);
    expect(JSON.parse(skipped.stdout)).toMatchObject({ requests: 2, invalid_skipped: 1 });
  });
});

/** A ledger directory holding only the given ROWS, for the expected sums. */
function writeRows(base: string, which: number[]): string {
  const dir = mkdtempSync(join(base, 'expected-'));
  writeFileSync(join(dir, 'ledger-2026-11-22.jsonl'), `${which.map((i) => JSON.stringify(ROWS[i])).join('\n')}\n`);
  return dir;
}
