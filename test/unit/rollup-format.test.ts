// How a rollup is shown (src/ledger/rollup-format.ts), in process. The CLI suite (ledger-rollup) checks lines of
// the report from real ledger files; here every line of it is pinned, with each optional part present and absent,
// since finance reads the report as it is printed and a spreadsheet takes the CSV column by column.
import { describe, expect, it } from 'vitest';
import type { GroupTotals, ModelTotals, Rollup } from '../../src/ledger/rollup-report.js';
import { formatRollup, formatRollupCsv } from '../../src/ledger/rollup-format.js';

const group = (over: Partial<GroupTotals>): GroupTotals => ({
  tenant_id: 'acme',
  feature_id: 'search',
  requests: 2,
  input_tokens: 3000,
  output_tokens: 800,
  total_tokens: 3800,
  cost_usd: 0.0102,
  saved_usd: 0,
  cache_hits: 0,
  unpriced: 0,
  ...over,
});

/** A rollup with nothing optional: no shadow, one version, no service tiers, no tool calls. */
const plain = (over: Partial<Rollup> = {}): Rollup => ({
  day: '2026-11-22',
  from: '2026-11-22',
  to: '2026-11-22',
  requests: 6,
  duplicates: 0,
  invalid_skipped: 0,
  trimmed_before: null,
  weak_tier_share: 0.8,
  cost_usd: 0.0123,
  cost_per_1000_requests: 2.05,
  error_rate: 1 / 6,
  rejected: 1,
  cancelled: 0,
  p95_latency_ms: 300,
  shadow: null,
  versions: [{ classifier_version: 'v7', requests: 5, weak_tier_share: 0.8, error_rate: 0, cost_per_1000_requests: 2 }],
  models: [],
  service_tiers: [],
  tool_calls: [],
  tool_calls_cost_usd: 0,
  groups: [group({}), group({ tenant_id: 'default', feature_id: null, requests: 14, input_tokens: 10, output_tokens: 5, total_tokens: 15, cost_usd: 0.0021, saved_usd: 0.5, unpriced: 3 })],
  ...over,
});

describe('formatRollup: the report', () => {
  it('every line of a plain report: totals, then the tenant × feature table with text columns left and numbers right', () => {
    expect(formatRollup(plain()).split('\n')).toEqual([
      'ledger rollup for 2026-11-22',
      '  requests              6',
      '  cost                  $0.012300',
      '  cost / 1,000 requests $2.050000',
      '  weak-tier share       80.0%',
      '  error rate            16.7%   (rejected by tiergate: 1, cancelled: 0)',
      '  p95 latency           300.0 ms',
      '',
      'tenant   feature  requests  input tok  output tok  cost USD  saved USD  unpriced',
      '-------  -------  --------  ---------  ----------  --------  ---------  --------',
      'acme     search          2       3000         800  0.010200   0.000000         0',
      'default  -              14         10           5  0.002100   0.500000         3',
      '',
    ]);
  });

  it('a column wider than its header widens the column for every row', () => {
    const lines = formatRollup(plain({ groups: [group({ tenant_id: 'a-tenant-with-a-long-name', requests: 1234567890 }), group({ tenant_id: 'b' })] })).split('\n');
    expect(lines.slice(-5)).toEqual([
      'tenant                     feature    requests  input tok  output tok  cost USD  saved USD  unpriced',
      '-------------------------  -------  ----------  ---------  ----------  --------  ---------  --------',
      'a-tenant-with-a-long-name  search   1234567890       3000         800  0.010200   0.000000         0',
      'b                          search            2       3000         800  0.010200   0.000000         0',
      '',
    ]);
  });

  it('the period: one day, a range, or every row given', () => {
    expect(formatRollup(plain({ day: null, from: '2026-11-01', to: '2026-11-30' }))).toMatch(/^ledger rollup for 2026-11-01 to 2026-11-30\n/);
    expect(formatRollup(plain({ day: null, from: null, to: null }))).toMatch(/^ledger rollup\n/);
  });

  it('what is unknown shows as "-", never as NaN, null or $0', () => {
    const text = formatRollup(plain({ requests: 0, cost_usd: 0, cost_per_1000_requests: null, weak_tier_share: null, error_rate: null, p95_latency_ms: null, groups: [] }));
    expect(text.split('\n').slice(0, 7)).toEqual([
      'ledger rollup for 2026-11-22',
      '  requests              0',
      '  cost                  $0.000000',
      '  cost / 1,000 requests -',
      '  weak-tier share       -',
      '  error rate            -   (rejected by tiergate: 1, cancelled: 0)',
      '  p95 latency           -',
    ]);
    // No groups: the table is its header alone.
    expect(text.endsWith('\ntenant  feature  requests  input tok  output tok  cost USD  saved USD  unpriced\n------  -------  --------  ---------  ----------  --------  ---------  --------\n')).toBe(true);
  });

  it('duplicates, skipped lines and a trimmed stream each say so; none of them, nothing is said', () => {
    const text = formatRollup(plain({ duplicates: 2, invalid_skipped: 3, trimmed_before: '2026-11-21T23:00:00.000Z' }));
    expect(text.split('\n').slice(1, 5)).toEqual([
      '  requests              6 (2 duplicate rows ignored)',
      '  INCOMPLETE            3 lines that are not ledger rows were skipped (listed on stderr)',
      '  INCOMPLETE            the Redis stream has lost the entries added before 2026-11-21T23:00:00.000Z (trimmed: maxLen)',
      '  cost                  $0.012300',
    ]);
    expect(formatRollup(plain())).not.toMatch(/duplicate|INCOMPLETE/);
  });

  it('the shadow classifier: its agreement, each direction of disagreement, and the weak share it would have given', () => {
    const shadow = { rows: 7, agreement_rate: 5 / 7, disagreements: { 'weak->strong': 1, 'strong->weak': 1 }, weak_tier_share: 0.625 };
    expect(formatRollup(plain({ shadow })).split('\n').slice(7, 9)).toEqual([
      '  shadow classifier     agreement 71.4% over 7 rows (disagree: weak->strong 1, strong->weak 1)',
      '                        weak-tier share under the shadow 62.5%',
    ]);
    // Full agreement names no direction; a shadow share that cannot be told is "-".
    expect(formatRollup(plain({ shadow: { ...shadow, agreement_rate: 1, disagreements: {}, weak_tier_share: null } })).split('\n').slice(7, 9)).toEqual([
      '  shadow classifier     agreement 100.0% over 7 rows',
      '                        weak-tier share under the shadow -',
    ]);
  });

  it('versions side by side only when there are two or more (a canary beside the active version)', () => {
    expect(formatRollup(plain())).not.toContain('by classifier version');
    const versions = [
      { classifier_version: 'v7', requests: 5, weak_tier_share: 0.6, error_rate: 0.2, cost_per_1000_requests: 1 },
      { classifier_version: 'v8-candidate', requests: 12345, weak_tier_share: null, error_rate: null, cost_per_1000_requests: null },
    ];
    expect(formatRollup(plain({ versions })).split('\n').slice(7, 10)).toEqual([
      '  by classifier version',
      '    v7                  5 requests   weak 60.0%   errors 20.0%   cost/1,000 $1.000000',
      '    v8-candidate    12345 requests   weak -   errors -   cost/1,000 -',
    ]);
  });

  it('by tier and model: names in aligned columns, and savings, cut answers and unpriced rows only where there are some', () => {
    const model = (over: Partial<ModelTotals>): ModelTotals => ({ tier: 'strong', model: 'strong-model', requests: 4, input_tokens: 0, output_tokens: 0, cost_usd: 0.01, saved_usd: 0, unpriced: 0, cut_short: 0, ...over });
    const models = [model({}), model({ tier: 'weak', model: 'weak-model-2024', requests: 10, cost_usd: 0.002, saved_usd: 0.0005, cut_short: 3, unpriced: 1 }), model({ tier: null, model: 'embed', requests: 1, cost_usd: 0 })];
    expect(formatRollup(plain({ models })).split('\n').slice(7, 11)).toEqual([
      '  by tier and model',
      '    strong  strong-model           4 requests   cost $0.010000',
      '    weak    weak-model-2024       10 requests   cost $0.002000   saved $0.000500   cut short 3 (30.0%)   unpriced 1',
      '    -       embed                  1 requests   cost $0.000000',
    ]);
  });

  it('service tiers, with the unpriced rows only where there are some', () => {
    const service_tiers = [
      { service_tier: 'priority', requests: 3, cost_usd: 0.005, unpriced: 1 },
      { service_tier: 'default', requests: 1, cost_usd: 0.002, unpriced: 0 },
    ];
    expect(formatRollup(plain({ service_tiers })).split('\n').slice(7, 10)).toEqual([
      '  by service tier',
      '    priority            3 requests   cost $0.005000   unpriced 1',
      '    default             1 requests   cost $0.002000',
    ]);
  });

  it('hosted tool calls: their cost, then each type', () => {
    const tool_calls = [
      { type: 'web_search_call', calls: 4, requests: 2 },
      { type: 'file_search_call', calls: 2, requests: 1 },
    ];
    expect(formatRollup(plain({ tool_calls, tool_calls_cost_usd: 0.045 })).split('\n').slice(7, 10)).toEqual([
      '  hosted tool calls      cost $0.045000',
      '    web_search_call             4 calls in 2 requests',
      '    file_search_call            2 calls in 1 requests',
    ]);
  });

  it('the optional parts in their order: shadow, versions, tiers and models, service tiers, tool calls, then the table', () => {
    const text = formatRollup(plain({
      shadow: { rows: 1, agreement_rate: 1, disagreements: {}, weak_tier_share: 1 },
      versions: [...plain().versions, { classifier_version: 'v8', requests: 1, weak_tier_share: 1, error_rate: 0, cost_per_1000_requests: 0 }],
      models: [{ tier: 'weak', model: 'weak-model', requests: 1, input_tokens: 1, output_tokens: 1, cost_usd: 0, saved_usd: 0, unpriced: 0, cut_short: 0 }],
      service_tiers: [{ service_tier: 'flex', requests: 1, cost_usd: 0, unpriced: 0 }],
      tool_calls: [{ type: 'mcp_call', calls: 1, requests: 1 }],
    }));
    const at = ['shadow classifier', 'by classifier version', 'by tier and model', 'by service tier', 'hosted tool calls', '\ntenant '].map((s) => text.indexOf(s));
    expect(at.every((i) => i > 0)).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
  });
});

describe('formatRollupCsv: the table for a spreadsheet', () => {
  const HEADER = 'from,to,tenant_id,feature_id,requests,input_tokens,output_tokens,total_tokens,cost_usd,saved_usd,cache_hits,unpriced';

  it('every column, the period first, money to six places, CRLF after every line', () => {
    expect(formatRollupCsv(plain({ from: '2026-11-01', to: '2026-11-30', groups: [group({ cache_hits: 4, saved_usd: 1.25, unpriced: 2 })] }))).toBe(
      `${HEADER}\r\n2026-11-01,2026-11-30,acme,search,2,3000,800,3800,0.010200,1.250000,4,2\r\n`,
    );
  });

  it('no groups: the header alone; no period (every row given) and no feature: empty fields', () => {
    expect(formatRollupCsv(plain({ groups: [] }))).toBe(`${HEADER}\r\n`);
    expect(formatRollupCsv(plain({ from: null, to: null, groups: [group({ feature_id: null })] }))).toBe(`${HEADER}\r\n,,acme,,2,3000,800,3800,0.010200,0.000000,0,0\r\n`);
  });

  it('RFC 4180: a field holding a comma, a quote, CR or LF is quoted, its quotes doubled; others are not', () => {
    const cells = (feature: string) => formatRollupCsv(plain({ groups: [group({ feature_id: feature })] })).split('\r\n')[1]?.split(',acme,')[1];
    expect(cells('a,b')).toBe('"a,b",2,3000,800,3800,0.010200,0.000000,0,0');
    expect(cells('say "hi"')).toBe('"say ""hi""",2,3000,800,3800,0.010200,0.000000,0,0');
    expect(cells('two\nlines')).toBe('"two\nlines",2,3000,800,3800,0.010200,0.000000,0,0');
    expect(cells('two\rlines')).toBe('"two\rlines",2,3000,800,3800,0.010200,0.000000,0,0');
    expect(cells("it's plain; and 'quoted'")).toBe("it's plain; and 'quoted',2,3000,800,3800,0.010200,0.000000,0,0");
  });

  it('a name a spreadsheet would run as a formula gets a leading quote mark, wherever the formula sign is first', () => {
    const first = (tenant: string) => formatRollupCsv(plain({ groups: [group({ tenant_id: tenant, feature_id: null })] })).split('\r\n')[1]?.split(',')[2];
    expect(['=1+1', '+1', '-1', '@SUM(A1)', '\tx'].map(first)).toEqual(["'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tx"]);
    // CR first: guarded and then quoted, since it holds a line break.
    expect(formatRollupCsv(plain({ groups: [group({ tenant_id: '\r=1', feature_id: null })] })).split('\r\n')[1]).toBe(`2026-11-22,2026-11-22,"'\r=1",,2,3000,800,3800,0.010200,0.000000,0,0`);
    // The sign elsewhere than first is harmless text.
    expect(['a=1', 'x-y', 'me@example.com'].map(first)).toEqual(['a=1', 'x-y', 'me@example.com']);
    // A guarded name that also needs quoting gets both.
    expect(formatRollupCsv(plain({ groups: [group({ tenant_id: '=HYPERLINK("x")', feature_id: null })] })).split('\r\n')[1]).toBe(`2026-11-22,2026-11-22,"'=HYPERLINK(""x"")",,2,3000,800,3800,0.010200,0.000000,0,0`);
  });
});
