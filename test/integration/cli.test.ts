// The tiergate command as a user runs it.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ExtProcPool } from '../../src/dev/envoy-client.js';
import { sampleRow } from '../helpers/ledger-rows.js';
import { chatHeaders, jsonBody } from '../helpers/tiergate.js';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
// From the repository, where `--import tsx` resolves (the test process itself runs in a temp directory).
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PACKAGE_VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000 });

function file(text: string): string {
  const f = join(mkdtempSync(join(tmpdir(), 'tiergate-cli-')), 'c.yaml');
  writeFileSync(f, text);
  return f;
}

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/eval/${name}`, import.meta.url));

describe('tiergate config check', () => {
  it('accepts a valid file and prints its version', () => {
    const r = run(['config', 'check', file('tiers: { weak: { model: "${WEAK}" }, strong: { model: s } }\n')], { WEAK: 'w' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/ok \(version [0-9a-f]{12}, classifier v7\)/);
  });

  it('prints every problem with its path and exits non-zero', () => {
    const r = run(['config', 'check', file('server: { listen: nope, admin: "0.0.0.0:99999" }\naliases: { x: nowhere }\n')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('server.listen: expected HOST:PORT, with a port from 0 to 65535');
    // A port past 65535 passed the check before and failed only when the server bound it.
    expect(r.stderr).toContain('server.admin: expected HOST:PORT, with a port from 0 to 65535');
    expect(r.stderr).toMatch(/problems?\n/);
  });

  it('a file that does not parse is named once, with the first syntax error only', () => {
    const f = file('tiers: { weak: { model: ${WEAK} }, strong: { model: s } }\n');
    const r = run(['config', 'check', f], { WEAK: 'w' });
    expect(r.status).toBe(1);
    expect(r.stderr.startsWith(`${f}: Unexpected flow-map-start at node end at line 1, column 26:\n`)).toBe(true);
    expect(r.stderr.split(f).length - 1).toBe(1);
    expect(r.stderr).toContain('(an ${VAR} inside { } or [ ] must be quoted: "${VAR}")');
    expect(r.stderr.endsWith('\n1 problem\n')).toBe(true);
  });

  it('refuses a classifier regex that can backtrack on client text, with an example attack; allowSlow accepts it', () => {
    const version = (cond: string) => `classifier:\n  versions:\n    v8:\n      rules: [{ name: mail, tier: strong, when: [${cond}] }]\n      default: weak\n`;
    const r = run(['config', 'check', file(version(`{ regex: '^([a-z]+\\.?)+@' }`))]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/classifier\.versions\.v8\.rules\[0\]\.when\[0\]\.regex: \/\^\(\[a-z\]\+\\\.\?\)\+@\/ can take exponential time on text a client chooses \(for example .*\)/);
    expect(r.stderr).toContain('1 problem\n');
    expect(run(['config', 'check', file(version(`{ regex: '^([a-z]+\\.?)+@', allowSlow: true }`))]).status).toBe(0);
  });

  it('notes keys that have expired or expire within 14 days, and still passes; an expiry without its offset is a problem', () => {
    const inDays = (d: number) => new Date(Date.now() + d * 86_400_000).toISOString();
    const key = (id: string, expiresAt: string) => `{ id: ${id}, sha256: "${'a'.repeat(64)}", tenant: acme, expiresAt: "${expiresAt}" }`;
    const r = run(['config', 'check', file(`auth: { mode: api_key, keys: [${key('old', '2026-01-31T00:00:00Z')}, ${key('soon', inDays(3.5))}, ${key('later', inDays(30))}] }\n`)]);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('auth.keys[0] (old): note: expired at 2026-01-31T00:00:00.000Z: it is refused (401 expired_api_key)');
    expect(r.stderr).toMatch(/auth\.keys\[1\] \(soon\): note: expires at \S+, in 4 day\(s\): give its clients a new key before then/);
    expect(r.stderr).not.toContain('later');
    const bare = run(['config', 'check', file(`auth: { keys: [${key('bare', '2027-01-31T00:00:00')}] }\n`)]);
    expect(bare.status).toBe(1);
    expect(bare.stderr).toContain('auth.keys[0].expiresAt');
  });

  it("notes stored responses that tenants could use across each other (keys on, and no affinity store or isolation off), and still passes", () => {
    const keys = `auth: { mode: api_key, keys: [{ id: a, sha256: "${'a'.repeat(64)}", tenant: acme }] }\n`;
    const r = run(['config', 'check', file(keys)]);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('routing.affinity.store: note: off, with gateway keys on: any tenant holding the id of a Responses API response or conversation another tenant stored can read, continue or delete it');
    const off = run(['config', 'check', file(`${keys}routing: { affinity: { store: memory, isolation: off } }\n`)]);
    expect(off.stderr).toContain('routing.affinity.isolation: note: off: any tenant holding');
    expect(off.stderr.match(/note:/g)).toHaveLength(1);
    // Isolated; or no keys (one tenant); or no Responses path to carry ids.
    for (const quiet of [`${keys}routing: { affinity: { store: memory } }\n`, 'routing: { affinity: { store: off } }\n', `${keys}routing: { classifyPaths: [/v1/chat/completions] }\n`]) {
      expect(run(['config', 'check', file(quiet)]).stderr, quiet).not.toContain('note:');
    }
  });

  it("notes a tier sent to OpenAI for several tenants with no safety identifier (one tenant's abuse would be the organisation's), and still passes", () => {
    const keys = `auth: { mode: api_key, keys: [{ id: a, sha256: "${'a'.repeat(64)}", tenant: acme }] }\nrouting: { classifyPaths: [/v1/chat/completions] }\n`;
    const tiers = (strong: string) => `tiers: { weak: { model: qwen, provider: vllm }, strong: { model: gpt-4.1, provider: openai${strong} } }\n`;
    const r = run(['config', 'check', file(keys + tiers(''))]);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("tiers.strong: note: its provider is openai and gateway keys are on, but it has no safetyIdentifierSecretEnv");
    expect(r.stderr.match(/safetyIdentifierSecretEnv/g)).toHaveLength(1); // never for the vLLM tier
    // With the secret; or without keys (one tenant).
    expect(run(['config', 'check', file(keys + tiers(', safetyIdentifierSecretEnv: SAFETY_KEY'))], { SAFETY_KEY: 'x'.repeat(32) }).stderr).not.toContain('safetyIdentifierSecretEnv');
    expect(run(['config', 'check', file('routing: { classifyPaths: [/v1/chat/completions] }\n' + tiers(''))]).stderr).not.toContain('safetyIdentifierSecretEnv');
  });

  it("notes a Realtime client-secret path sent with a tier's credential (a key for the provider, past tiergate), and still passes", () => {
    const config = (credential: string, path = '/v1/realtime/client_secrets') =>
      `tiers: { weak: { model: qwen }, strong: { model: gpt-4.1 }, voice: { model: gpt-realtime${credential} } }\n` +
      `routing: { unclassifiedPaths: { /v1/embeddings: {}, ${path}: { tier: voice } } }\n`;
    const r = run(['config', 'check', file(config(', credentialsEnv: OPENAI_API_KEY'))], { OPENAI_API_KEY: 'sk-test' });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("routing.unclassifiedPaths./v1/realtime/client_secrets: note: it goes to tier 'voice' with that tier's credential, and its answer is a key for the Realtime API");
    expect(r.stderr.match(/note:/g)).toHaveLength(1);
    // The retired beta endpoint minted keys too.
    expect(run(['config', 'check', file(config(', credentialsEnv: OPENAI_API_KEY', '/v1/realtime/sessions'))], { OPENAI_API_KEY: 'sk-test' }).stderr).toContain('/v1/realtime/sessions: note:');
    // Without a credential of the tier's, the client's own key goes upstream: nothing of the operator's to mint with.
    expect(run(['config', 'check', file(config(''))]).stderr).not.toContain('note:');
    expect(run(['config', 'check', file(config(', credentialsEnv: OPENAI_API_KEY', '/v1/audio/speech'))], { OPENAI_API_KEY: 'sk-test' }).stderr).not.toContain('Realtime');
  });

  it('notes a model sent to OpenAI whose price lists no service tiers, and still passes; the annotated example has none', () => {
    const config = (price: string) =>
      `tiers: { weak: { model: qwen, provider: vllm }, strong: { model: gpt-4.1, provider: openai }, canary: { model: gpt-4.1, provider: openai } }\n` +
      `prices: { version: p, models: { qwen: { perToken: 0.0000001 }, gpt-4.1: ${price} }, toolCalls: { web_search_call: 0.01 } }\n`;
    const r = run(['config', 'check', file(config('{ input: 2, output: 8 }'))]);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("tiers.strong: note: its provider is openai, but the price of 'gpt-4.1' lists no serviceTiers");
    expect(r.stderr.match(/note:/g)).toHaveLength(1); // once per model, and never for the vLLM tier
    expect(run(['config', 'check', file(config('{ input: 2, output: 8, serviceTiers: { priority: { input: 3.5, output: 14 } } }'))]).stderr).not.toContain('note:');
    const example = run(['config', 'check', join(ROOT, 'examples/tiergate.yaml')], { OPENAI_API_KEY: 'sk-test', REDIS_URL: 'redis://127.0.0.1:6379', LEDGER_USER_HASH_KEY: '0123456789abcdef0123' });
    expect([example.status, example.stderr]).toEqual([0, '']);
    expect(example.stdout).toContain('examples/tiergate.yaml: ok');
  });

  it("the annotated example's header says which variables it reads: with them it checks ok, without one that one is named", () => {
    const example = join(ROOT, 'examples/tiergate.yaml');
    const header = readFileSync(example, 'utf8').split('\n').find((l) => l.endsWith('tiergate config check examples/tiergate.yaml'));
    const names = [...(header ?? '').matchAll(/([A-Z_]+)=/g)].map((m) => m[1] as string);
    expect(names).toEqual(['OPENAI_API_KEY', 'LEDGER_USER_HASH_KEY']);
    const env = Object.fromEntries(names.map((n) => [n, '0123456789abcdef0123']));
    // Unset in the child whatever the machine has set, so only the header's variables are there.
    const bare = { OPENAI_API_KEY: undefined, LEDGER_USER_HASH_KEY: undefined, REDIS_URL: undefined };
    expect(run(['config', 'check', example], { ...bare, ...env }).status).toBe(0);
    for (const name of names) {
      const r = run(['config', 'check', example], { ...bare, ...env, [name]: undefined });
      expect(r.status).toBe(1);
      expect(r.stdout + r.stderr).toContain(`environment variable ${name} is not set`);
    }
  });

  it('notes a tier sent to OpenAI with no price for web searches (a Responses answer\'s would be left out of its cost), and still passes', () => {
    const config = (extra: string) => `tiers: { weak: { model: qwen, provider: vllm }, strong: { model: gpt-4.1, provider: openai } }\n${extra}`;
    const r = run(['config', 'check', file(config(''))]);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("prices.toolCalls: note: tier 'strong' goes to OpenAI, but web_search_call has no price");
    expect(r.stderr.match(/prices\.toolCalls: note:/g)).toHaveLength(1);
    // Priced; or no Responses path to carry them; or no tier on OpenAI.
    expect(run(['config', 'check', file(config('prices: { version: p, models: {}, toolCalls: { web_search_call: 0.01 } }\n'))]).stderr).not.toContain('prices.toolCalls');
    expect(run(['config', 'check', file(config('routing: { classifyPaths: [/v1/chat/completions] }\n'))]).stderr).not.toContain('prices.toolCalls');
    expect(run(['config', 'check', file('tiers: { weak: { model: qwen, provider: vllm } }\n')]).stderr).not.toContain('prices.toolCalls');
  });

  it('notes an audio path sent to a tier whose model has no price for what it bills (its answers would be unpriced), and still passes', () => {
    const config = (stt: string, tts = '{ characters: 15 }') =>
      'tiers: { weak: { model: qwen }, strong: { model: big }, stt: { model: whisper-large-v3 }, tts: { model: tts-1 } }\n' +
      'routing: { unclassifiedPaths: { /v1/embeddings: { tier: weak }, /v1/audio/transcriptions: { tier: stt }, /v1/audio/speech: { tier: tts } } }\n' +
      `prices: { version: p, models: { qwen: { perToken: 0.0000001 }, big: { input: 1, output: 2 }, whisper-large-v3: ${stt}, tts-1: ${tts} } }\n`;
    const r = run(['config', 'check', file(config('{ perToken: 0.0000002 }'))]);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("routing.unclassifiedPaths./v1/audio/transcriptions: note: it goes to tier 'stt', whose model 'whisper-large-v3' has no audioMinute or audioInput price");
    expect(r.stderr.match(/note:/g)).toHaveLength(1); // not for speech (priced by the character), nor the embeddings path
    expect(run(['config', 'check', file(config('{ input: 2.5, output: 10 }'))]).stderr).toContain('/v1/audio/transcriptions: note:');
    // Speech priced as text: neither tts-1's characters nor gpt-4o-mini-tts's audio tokens could be priced.
    const speech = run(['config', 'check', file(config('{ audioMinute: 0.006 }', '{ input: 0.6, output: 12 }'))]);
    expect(speech.status).toBe(0);
    expect(speech.stderr).toContain("routing.unclassifiedPaths./v1/audio/speech: note: it goes to tier 'tts', whose model 'tts-1' has no characters or audioOutput price");
    expect(speech.stderr.match(/note:/g)).toHaveLength(1);
    // Priced by the minute or by audio tokens; speech by the character, by audio tokens, or per token: no note.
    for (const [stt, tts] of [
      ['{ perToken: 0.0000002, audioMinute: 0.001 }', '{ input: 0.6, output: 12, audioOutput: 12 }'],
      ['{ audioMinute: 0.006 }', '{ perToken: 0.0000001 }'],
      ['{ input: 2.5, output: 10, audioInput: 6 }', '{ characters: 15, audioMinute: 0.01 }'],
    ] as const) {
      expect(run(['config', 'check', file(config(stt, tts))]).stderr, `${stt} ${tts}`).not.toContain('note:');
    }
  });

  it('notes the tenants whose models leave out the tier an unclassified path goes to, and still passes', () => {
    const r = run(['config', 'check', file(
      'routing: { unclassifiedPaths: { /v1/embeddings: { tier: strong }, /v1/moderations: {} } }\n' +
        'aliases: { smart: strong }\n' +
        'plans: { free: { models: [weak] } }\n' +
        'tenants: { "*": { plan: free }, acme: { plan: free, models: [smart] }, initech: { models: [weak] }, globex: { requestsPerMinute: 5 } }\n',
    )]);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("tenants.*: note: its models leave out tier 'strong', where routing.unclassifiedPaths sends /v1/embeddings: tenants without an entry of their own will be refused there (403 model_not_allowed)");
    expect(r.stderr).toContain("tenants.initech: note: its models leave out tier 'strong'");
    // acme may name an alias of strong; globex's entry has no model list, but falls under "*" and its plan.
    expect(r.stderr).not.toContain('tenants.acme');
    expect(r.stderr).toContain("tenants.globex: note: its models leave out tier 'strong'");
    expect(r.stderr.match(/note:/g)).toHaveLength(3);
  });

  it('notes a cache on the same Redis server as the budgets or the ledger (another database is the same memory), and still passes', () => {
    const shared = run(['config', 'check', file(
      'cache: { store: redis, redis: { url: "redis://:Pw-not-in-any-path-7Q@Redis.example:6379/1" } }\n' +
        'budgets: { store: redis, redis: { url: "redis://redis.example:6379/0" } }\n' +
        'ledger: { sinks: [{ type: redis, name: finance, url: "redis://redis.example" }, { type: stdout }] }\n',
    )]);
    expect(shared.status).toBe(0);
    expect(shared.stderr).toContain('cache.redis: note: the same Redis server as budgets.redis (redis.example:6379; databases share one maxmemory)');
    expect(shared.stderr).toContain('cache.redis: note: the same Redis server as ledger.sinks[0] (finance)');
    // A password no temp path can hold: with "pw" the test failed whenever mkdtemp's random suffix spelled it.
    expect(shared.stderr).not.toContain('Pw-not-in-any-path-7Q');
    const apart = run(['config', 'check', file('cache: { store: redis, redis: { url: "redis://cache:6379" } }\nbudgets: { store: redis, redis: { url: "redis://budgets:6379" } }\n')]);
    expect([apart.status, apart.stderr]).toEqual([0, '']);
  });

  it('reports a missing environment variable', () => {
    const r = run(['config', 'check', file('tiers: { weak: { model: "${NOPE_NOT_SET}" }, strong: { model: s } }\n')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('tiers.weak.model: environment variable NOPE_NOT_SET is not set');
  });

  it('--help (or -h) after any command prints the usage on stdout and exits 0', () => {
    for (const args of [['--help'], ['eval', '--help'], ['serve', '-h'], ['ledger', 'rollup', '--help']]) {
      const r = run(args);
      expect([r.status, r.stderr], args.join(' ')).toEqual([0, '']);
      expect(r.stdout).toContain('tiergate eval FILE');
    }
  });

  it('--version (or version) prints the package version and the Node that runs it', () => {
    for (const args of [['--version'], ['version']]) {
      expect(run(args)).toMatchObject({ status: 0, stdout: `tiergate ${PACKAGE_VERSION} (Node ${process.versions.node})\n`, stderr: '' });
    }
  });

  it('usage on a bad command, after a line saying what was wrong (it was the usage alone)', () => {
    for (const [args, line] of [
      [['frobnicate'], 'tiergate: unknown command "frobnicate"'],
      [['ledger'], 'tiergate ledger: name a subcommand: rollup or import'],
      [['ledger', 'rolup'], 'tiergate ledger: unknown subcommand "rolup" (rollup or import)'],
      [['config'], 'tiergate config: name a subcommand: check FILE'],
      [['config', 'chek', 'x.yaml'], 'tiergate config: unknown subcommand "chek" (check FILE)'],
      [['config', 'check'], 'tiergate config check: name one file, got 0'],
      [['config', 'check', 'a.yaml', 'b.yaml'], 'tiergate config check: name one file, got 2'],
      [['mock', '--listen', '127.0.0.1:0'], 'tiergate mock: --name is required (the model name it answers as)'],
      [['mock', '--name', 'm', '--served-model-name', 'a,,b'], 'tiergate mock: --served-model-name takes model names separated by commas, none of them empty'],
    ] as const) {
      const r = run([...args]);
      expect([r.status, r.stdout], args.join(' ')).toEqual([2, '']);
      expect(r.stderr, args.join(' ')).toMatch(new RegExp(`^${line.replace(/[()]/g, '\\$&')}\nusage:\n`));
    }
    // No command at all is not a mistake to name: the usage alone.
    expect(run([])).toMatchObject({ status: 2, stderr: expect.stringMatching(/^usage:\n/) });
  });

  it('a flag no command knows, a flag without its value or a value for a switch is a usage mistake (exit 2) in every command', () => {
    const log = join(mkdtempSync(join(tmpdir(), 'tiergate-cli-')), 'app.log');
    writeFileSync(log, '');
    for (const [args, prefix, message] of [
      [['serve', '--bogus'], 'tiergate', "Unknown option '--bogus'"],
      [['dev', '--port'], 'tiergate', "Option '--port <value>' argument missing"],
      [['mock', '--name', 'm', '--verbose'], 'tiergate', "Unknown option '--verbose'"],
      [['ledger', 'rollup', '--day', '2026-12-01', '--file', log, '--weak-tier'], 'tiergate ledger rollup', "Option '--weak-tier <value>' argument missing"],
      [['ledger', 'rollup', '--file', log, '--json=yes'], 'tiergate ledger rollup', "Option '--json' does not take an argument"],
      [['ledger', 'import', '--conf', 'x.yaml', log], 'tiergate ledger import', "Unknown option '--conf'"],
      [['eval', fixture('labelled.jsonl'), '--bogus'], 'tiergate eval', "Unknown option '--bogus'"],
      [['keywords', '--from'], 'tiergate keywords', "Option '--from <value>' argument missing"],
      [['canary', 'status', '--ns', 'x'], 'tiergate canary', "Unknown option '--ns'"],
    ] as const) {
      const r = run([...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(new RegExp(`^${prefix}: ${message.replace(/[[\]().*+?<>]/g, '\\$&')}[^\n]*\n$`));
    }
    // A second file where the command takes one is a mistake too, not a file passed over unread.
    expect(run(['config', 'check', log, log]).status).toBe(2);
    const two = run(['eval', fixture('labelled.jsonl'), fixture('labelled.jsonl')]);
    expect([two.status, two.stderr]).toEqual([2, `tiergate eval: name one labelled file, got 2: ${fixture('labelled.jsonl')} ${fixture('labelled.jsonl')}\n`]);
  });

  it('a number flag that is not a number is a usage mistake (exit 2), not a server on a port nobody asked for', () => {
    for (const [args, message] of [
      [['dev', '--port', 'abc'], '--port expects a port number, 0 to 65535, got "abc"'],
      [['dev', '--port', '70000'], '--port expects a port number, 0 to 65535, got "70000"'],
      [['dev', '--admin', ':9090'], '--admin expects HOST:PORT, with a port from 0 to 65535, got ":9090"'],
      [['mock', '--name', 'm', '--latency-ms', '5s'], '--latency-ms expects a number of milliseconds, got "5s"'],
      [['mock', '--name', 'm', '--chunk-delay-ms='], '--chunk-delay-ms expects a number of milliseconds, got ""'],
      // Addresses as the config checks server.listen: before, a Node error (mock) or a DNS lookup of "nope" (serve).
      [['mock', '--name', 'm', '--listen', 'abc'], '--listen expects HOST:PORT, with a port from 0 to 65535, got "abc"'],
      [['serve', '--listen', 'nope'], '--listen expects HOST:PORT, with a port from 0 to 65535, got "nope"'],
      [['serve', '--admin', '127.0.0.1:65536'], '--admin expects HOST:PORT, with a port from 0 to 65535, got "127.0.0.1:65536"'],
    ] as const) {
      const r = run([...args]);
      expect([r.status, r.stderr], args.join(' ')).toEqual([2, `tiergate: ${message}\n`]);
    }
  });
});

describe('examples', () => {
  it.each(['tiergate.yaml', 'tenants.yaml', 'classifier-tuning.yaml'])('examples/%s is a valid config (the README shows it)', (name) => {
    const example = fileURLToPath(new URL(`../../examples/${name}`, import.meta.url));
    const r = run(['config', 'check', example], { OPENAI_API_KEY: 'sk-example', LEDGER_USER_HASH_KEY: 'a-key-of-at-least-16-chars' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('the demo keys in examples/tenants.yaml are the ones its comment names', async () => {
    const { sha256Hex } = await import('../../src/auth/api-keys.js');
    const text = readFileSync(fileURLToPath(new URL('../../examples/tenants.yaml', import.meta.url)), 'utf8');
    for (const key of ['demo-acme-key', 'demo-platform-key']) expect(text).toContain(sha256Hex(key));
  });
});

/** A port something else holds, for as long as the test runs. */
async function takenPort(): Promise<{ port: number; release: () => void }> {
  const { createServer } = await import('node:net');
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  return { port: (taken.address() as { port: number }).port, release: () => taken.close() };
}

describe('tiergate dev', () => {
  it('a port taken stops it with the reason and the flag that moves it, instead of running on half started', async () => {
    const admin = await takenPort();
    try {
      const r = run(['dev', '--port', '0', '--listen', '127.0.0.1:0', '--admin', `127.0.0.1:${admin.port}`]);
      expect([r.status, r.signal]).toEqual([1, null]);
      expect(r.stderr).toBe(`tiergate: tiergate's ext_proc or admin listener: listen EADDRINUSE: address already in use 127.0.0.1:${admin.port} (--listen and --admin move them)\n`);
    } finally {
      admin.release();
    }
  });

  it('the data plane\'s port taken: the error names --port, and what had started (tiergate, the mocks) is stopped', async () => {
    const { startDevStack } = await import('../../src/dev/dev-stack.js');
    const { connect } = await import('node:net');
    const dp = await takenPort();
    // tiergate's gRPC port, chosen here so that the test can see it closed afterwards.
    const free = await takenPort();
    free.release();
    try {
      await expect(
        startDevStack({ port: dp.port, grpcListen: `127.0.0.1:${free.port}`, adminListen: '127.0.0.1:0', backendPorts: { weak: 0, strong: 0 }, env: { TIERGATE_LOG_LEVEL: 'silent' } }),
      ).rejects.toThrow(`the data plane (--port): listen EADDRINUSE: address already in use 127.0.0.1:${dp.port}`);
      const refused = await new Promise<string>((resolve) => {
        const c = connect(free.port, '127.0.0.1');
        c.once('connect', () => (c.destroy(), resolve('connected')));
        c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      });
      expect(refused).toBe('ECONNREFUSED');
    } finally {
      dp.release();
    }
  });
});

describe('tiergate mock --served-model-name', () => {
  it('serves those names only, as vLLM does: another is a 404, and every answer reports the first', async () => {
    const { spawn } = await import('node:child_process');
    const free = await takenPort();
    free.release();
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'mock', '--name', 'weak', '--listen', `127.0.0.1:${free.port}`, '--served-model-name', 'weak-model, strong-model'], {
      cwd: ROOT,
      stdio: 'ignore',
    });
    onTestFinished(() => void child.kill('SIGKILL'));
    const url = `http://127.0.0.1:${free.port}`;
    const ask = async (model: string) => {
      const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }) });
      return { status: r.status, body: (await r.json()) as { model?: string; error?: { message: string } } };
    };
    await expect.poll(() => ask('weak-model').then((r) => r.status, () => 'refused'), { timeout: 15_000, interval: 200 }).toBe(200);
    expect((await ask('strong-model')).body.model).toBe('weak-model');
    expect(await ask('gpt-4o')).toEqual({ status: 404, body: { error: { message: 'The model `gpt-4o` does not exist.', type: 'NotFoundError', param: 'model', code: 404 } } });
    // No model named: vLLM answers with its own.
    expect(await ask('')).toMatchObject({ status: 200, body: { model: 'weak-model' } });
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string }> };
    expect(models.data.map((m) => m.id)).toEqual(['weak-model', 'strong-model']);
  });
});

describe('a server whose stdout reader is gone', () => {
  it('`tiergate mock` keeps serving when its "listening" line meets a closed pipe: that write was an EPIPE crash', async () => {
    // `tiergate dev | head -1` did the same with its banner, and the crash then hung in its fatal log line (see
    // logger-exit.test.ts); mock's one line shows the first half without the fixed ports dev's mocks take.
    const { spawn } = await import('node:child_process');
    const free = await takenPort();
    free.release();
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'mock', '--name', 'small-v1', '--listen', `127.0.0.1:${free.port}`], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    onTestFinished(() => void child.kill('SIGKILL'));
    // Closed before the process has written anything: its first line is an EPIPE.
    child.stdout.destroy();
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const answer = async () => {
      try {
        const r = await fetch(`http://127.0.0.1:${free.port}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'small-v1', messages: [{ role: 'user', content: 'hi' }] }),
        });
        return r.status;
      } catch {
        return 'refused';
      }
    };
    await expect.poll(answer, { timeout: 15_000, interval: 200 }).toBe(200);
    // Still up a moment later (the line's EPIPE is reported after the write), and said nothing on stderr.
    await new Promise((r) => setTimeout(r, 300));
    expect(await answer()).toBe(200);
    expect(child.exitCode).toBeNull();
    expect(err).toBe('');
  });
});

/** `tiergate serve ARGS` on ports of its own, logging at info; `out` and `err` are its stdout and stderr so far. */
function spawnServe(args: string[]): { child: ChildProcessWithoutNullStreams; out: string; err: string } {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', ...args, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], {
    cwd: ROOT,
    env: { ...process.env, TIERGATE_LOG_LEVEL: 'info' },
  });
  onTestFinished(() => void child.kill('SIGKILL'));
  const run = { child, out: '', err: '' };
  child.stdout.on('data', (d: Buffer) => (run.out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (run.err += d.toString()));
  return run;
}

describe('tiergate serve', () => {
  it('a start that fails half way (the admin port taken after the gRPC one was bound) exits 1 instead of running on, never ready', async () => {
    const admin = await takenPort();
    try {
      // spawnSync's 20 s timeout would kill the process that ran on (status null, signal SIGTERM): it did before.
      const r = run(['serve', '--listen', '127.0.0.1:0', '--admin', `127.0.0.1:${admin.port}`]);
      expect([r.status, r.signal]).toEqual([1, null]);
      expect(r.stderr).toBe(`tiergate: listen EADDRINUSE: address already in use 127.0.0.1:${admin.port}\n`);
    } finally {
      admin.release();
    }
  });

  it('the gRPC port taken: the reason as the admin port\'s would read, and grpc-js\'s own line a JSON log event, not plain text', async () => {
    const grpc = await takenPort();
    try {
      const r = run(['serve', '--listen', `127.0.0.1:${grpc.port}`, '--admin', '127.0.0.1:0']);
      expect([r.status, r.signal]).toEqual([1, null]);
      // Before: "tiergate: No address added out of total 1 resolved errors: [listen EADDRINUSE: …]", after grpc-js
      // had written "E No address added out of total 1 resolved" to stderr itself.
      expect(r.stderr).toBe(`tiergate: listen EADDRINUSE: address already in use 127.0.0.1:${grpc.port}\n`);
      const lines = r.stdout.split('\n').filter((l) => l !== '');
      expect(lines.map((l) => JSON.parse(l) as Record<string, unknown>)).toContainEqual(expect.objectContaining({ level: 'error', event: 'grpc.log', message: 'No address added out of total 1 resolved' }));
    } finally {
      grpc.release();
    }
  });

  it('a spool or file sink directory that cannot be made refuses the start, naming it (it started and reported ready, and the first outage found out)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-cli-dirs-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const blocker = join(dir, 'a-file');
    writeFileSync(blocker, '');
    const r = run(['serve', '--config', file(`ledger:\n  sinks: [{ type: stdout }]\n  spoolDir: ${join(blocker, 'spool')}\n`), '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0']);
    expect([r.status, r.signal]).toEqual([1, null]);
    expect(r.stderr).toBe(`invalid config:\nledger.spoolDir: ${JSON.stringify(join(blocker, 'spool'))} cannot be made or written to (ENOTDIR)\n`);
  });

  it('a directory whose disk never answers refuses the start after 5 s, and the process still ends (its stuck check kept it alive)', () => {
    // Node's recursive mkdir never returns under /proc (procfs answers ENOENT for a directory whose parent
    // exists, and Node retries for ever): a stand-in for a hung network mount, whose operations never end either.
    const r = run(['serve', '--config', file('ledger:\n  sinks: [{ type: stdout }]\n  spoolDir: /proc/tiergate-no-such/spool\n'), '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0']);
    expect([r.status, r.signal]).toEqual([1, null]);
    expect(r.stderr).toBe('invalid config:\nledger.spoolDir: "/proc/tiergate-no-such/spool" cannot be made or written to (no answer within 5000 ms)\n');
  });

  it('starts on embedded defaults; on SIGTERM reports not ready but takes new streams for the drain delay, then stops and exits 0', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], {
      cwd: ROOT,
      env: { ...process.env, TIERGATE_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await expect.poll(() => out, { timeout: 15_000 }).toContain('"event":"server.started"');
    const started = JSON.parse(out.split('\n').find((l) => l.includes('server.started')) ?? '{}') as { admin_port: number; grpc_port: number };
    // The build it runs, for a rollout of tiergate itself.
    expect(started).toMatchObject({ version: PACKAGE_VERSION, node_version: process.versions.node });
    expect((await fetch(`http://127.0.0.1:${started.admin_port}/readyz`)).status).toBe(200);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    await expect.poll(() => out, { timeout: 5_000 }).toContain('"event":"server.draining"');
    // Not ready, so Envoy's health checks and Kubernetes take it out of rotation…
    expect((await fetch(`http://127.0.0.1:${started.admin_port}/readyz`)).status).toBe(503);
    // …while a stream Envoy opens before they have is still served, not refused (a 500 for its request).
    const pool = new ExtProcPool(`127.0.0.1:${started.grpc_port}`, 500);
    try {
      const s = pool.open();
      expect((await s.sendRequestHeaders(chatHeaders(), false)).kind).toBe('continue');
      expect((await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }))).kind).toBe('continue');
      s.close();
    } finally {
      pool.close();
    }
    expect(out).not.toContain('"event":"server.stopping"');
    expect(await exited).toBe(0);
    expect(out).toContain('"event":"server.stopping"');
    expect(out).toContain('"event":"server.stopped"');
  });

  it('exits on SIGTERM when its stdout was closed under it (a pipe into `head`, a log shipper that died): it used to retry the last log line forever', async () => {
    const { spawn } = await import('node:child_process');
    const config = file('server: { drainDelayMs: 0 }\n');
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--config', config, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], {
      cwd: ROOT,
      env: { ...process.env, TIERGATE_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    onTestFinished(() => void child.kill('SIGKILL'));
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (code, signal) => resolve([code, signal])));
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await expect.poll(() => out, { timeout: 15_000 }).toContain('"event":"server.started"');
    // The reading end goes away, as when `head -2` has its lines: every later write to stdout is EPIPE.
    child.stdout.destroy();
    child.kill('SIGTERM');
    // Not a measure of speed: before the fix the process never ended (one was found running 1.5 h later), so a
    // generous bound tells a hang from a slow machine.
    const outcome = await Promise.race([exited, new Promise<'still running'>((r) => setTimeout(() => r('still running'), 15_000))]);
    expect(outcome).toEqual([0, null]);
    // Logging stopped quietly: no stack trace about the broken pipe.
    expect(err).toBe('');
  }, 40_000);

  it('SIGHUP reads the config file now instead of ending the process; with no file it says there is none', async () => {
    // Before: Node's default for SIGHUP ended the process at once, mid-stream and with rows still in memory.
    const config = file('tiers: { weak: { model: small-v1 }, strong: { model: large-v1 } }\n');
    const withFile = spawnServe(['--config', config]);
    const bare = spawnServe([]);
    for (const r of [withFile, bare]) await expect.poll(() => r.out, { timeout: 20_000 }).toContain('"event":"server.started"');
    withFile.child.kill('SIGHUP');
    await expect.poll(() => withFile.out, { timeout: 5_000 }).toContain('"event":"config.unchanged","reason":"SIGHUP"');
    bare.child.kill('SIGHUP');
    await expect.poll(() => bare.out, { timeout: 5_000 }).toContain('"event":"config.reload_skipped"');
    // Both still serve, and SIGTERM still stops them cleanly.
    for (const r of [withFile, bare]) {
      expect(r.child.exitCode).toBeNull();
      const exited = new Promise<number | null>((resolve) => r.child.on('exit', (code) => resolve(code)));
      r.child.kill('SIGINT');
      expect(await exited).toBe(0);
    }
  }, 60_000);

  it('SIGUSR1 and SIGUSR2 are logged and ignored: Node opened its debugger on the first and ended the process on the second', async () => {
    // Before: SIGUSR1 opened Node's inspector on 127.0.0.1:9229, a port that runs any code sent to it, in a process
    // holding the upstream keys; SIGUSR2 ended the process at once, streams cut and rows in memory lost.
    const r = spawnServe([]);
    const { child } = r;
    await expect.poll(() => r.out, { timeout: 20_000 }).toContain('"event":"server.started"');
    const { admin_port } = JSON.parse(r.out.split('\n').find((l) => l.includes('server.started')) ?? '{}') as { admin_port: number };
    for (const signal of ['SIGUSR1', 'SIGUSR2'] as const) {
      child.kill(signal);
      await expect.poll(() => r.out, { timeout: 5_000 }).toContain(`"event":"signal.ignored","signal":"${signal}"`);
    }
    expect((await fetch(`http://127.0.0.1:${admin_port}/readyz`)).status).toBe(200);
    expect(child.exitCode).toBeNull();
    // No inspector: Node says "Debugger listening on ws://…" (or that its port is taken) on stderr when it opens one.
    expect(r.err).toBe('');
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  }, 60_000);
});

describe('tiergate eval and keywords', () => {
  /** Runs the command with its stdout read until the first chunk and then closed, as `| head -1` does. */
  async function runCut(args: string[]): Promise<{ code: number | null; stderr: string }> {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    return { code, stderr };
  }

  it('output cut short by its reader (`| head`) ends quietly with the command\'s own exit code (it was an EPIPE stack trace, exit 1)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-cut-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    // Far more than a pipe holds (64 KiB): thousands of distinct terms, and as many rows two versions disagree on.
    const rows = join(dir, 'rows.jsonl');
    writeFileSync(rows, Array.from({ length: 4000 }, (_, i) => JSON.stringify({ prompt: `how do I tune widget${i} for gadget${i}`, tier: 'weak' })).join('\n'));
    const config = file('classifier:\n  versions:\n    v8: { rules: [], default: strong }\n  shadow: v8\n');
    expect(await runCut(['keywords', '--from', rows, '--all-rows', '--top', '100000', '--min-rows', '1'])).toEqual({ code: 0, stderr: '' });
    // v8 sends every row strong, so --check fails, and still does with its report cut short.
    expect(await runCut(['eval', rows, '--config', config, '--disagreements', '100000', '--check'])).toEqual({ code: 1, stderr: '' });
  });

  const candidate = () =>
    file('classifier:\n  versions:\n    v8: { rules: [{ name: keyword, tier: strong, when: [{ anyKeyword: [python] }] }], default: weak }\n  shadow: v8\n');

  it('compares the active and the shadow version of a config by default; --json is machine-readable', () => {
    const r = run(['eval', fixture('labelled.jsonl'), '--config', candidate(), '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.versions.map((v: { version: string; misroute_rate: number }) => [v.version, v.misroute_rate])).toEqual([['v7', 0.3], ['v8', 0.4]]);
    expect(out.disagreements.rows).toBe(8);
  });

  it('--check exits 1 when a version misses an SLO; a loose enough SLO passes', () => {
    expect(run(['eval', fixture('labelled.jsonl'), '--check']).status).toBe(1);
    const loose = run(['eval', fixture('labelled.jsonl'), '--check', '--max-misroute', '0.3', '--weak-share', '0.5-0.7']);
    expect(loose.stdout).toMatch(/SLO misroute ≤ 30\.0%\s+ok/);
    expect(loose.status).toBe(0);
  });

  it('a file with no row to score is an error saying what it held and where a label is read (was: a table of dashes, exit 0)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-eval-empty-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const unlabelled = join(dir, 'unlabelled.jsonl');
    writeFileSync(unlabelled, '{"prompt":"hi"}\n{"prompt":"refactor this","tier":"medium"}\n');
    expect(run(['eval', unlabelled])).toMatchObject({
      status: 1,
      stdout: '',
      stderr: `tiergate eval: ${unlabelled}: no row to score (1 without a label, 1 with a label that is no tier, 0 unreadable). A row's label is read from its "tier" or "label" field (--label-field names another) and names a tier: weak, strong\n`,
    });
    // Named by --label-field, and with --json too: nothing printed to parse as a report.
    const named = run(['eval', unlabelled, '--label-field', 'expected', '--json']);
    expect([named.status, named.stdout]).toEqual([1, '']);
    expect(named.stderr).toContain('(2 without a label, 0 with a label that is no tier, 0 unreadable). A row\'s label is read from its "expected" field and names a tier');
    // A dataset's own shape is unreadable row by row, and the error says why (it gave only the count).
    const dataset = join(dir, 'gsm8k.jsonl');
    writeFileSync(dataset, '{"question":"How many eggs?","answer":"18"}\nnot json\n');
    const shaped = run(['eval', dataset]);
    expect([shaped.status, shaped.stdout]).toEqual([1, '']);
    expect(shaped.stderr).toContain(`(0 without a label, 0 with a label that is no tier, 2 unreadable).`);
    expect(shaped.stderr).toMatch(/names a tier: weak, strong\n {2}line 1: no "prompt" string or "messages" array\n {2}line 2: not valid JSON\n$/);
    const mined = run(['keywords', '--from', dataset, '--all-rows']);
    expect(mined.stdout).toContain('2 unreadable rows skipped\n  line 1: no "prompt" string or "messages" array\n  line 2: not valid JSON\n');
  });

  it('usage mistakes exit 2 with one line of explanation', () => {
    const unknown = run(['eval', fixture('labelled.jsonl'), '--versions', 'v7,v99']);
    expect([unknown.status, unknown.stderr]).toEqual([2, 'tiergate eval: unknown classifier version "v99" (versions: v7)\n']);
    expect(run(['eval']).status).toBe(2);
    expect(run(['eval', fixture('labelled.jsonl'), '--weak-share', '60%']).status).toBe(2);
    // A reversed range: no share is in it, so every version would miss that SLO.
    expect(run(['eval', fixture('labelled.jsonl'), '--weak-share', '0.7-0.6']).stderr).toBe('tiergate eval: --weak-share expects MIN-MAX with MIN at most MAX, got "0.7-0.6"\n');
    expect(run(['eval', fixture('labelled.jsonl'), '--check', '--max-misroute', '1', '--weak-share', '0.6-0.6']).status).not.toBe(2);
    // An empty value was Number("") = 0: an SLO of no misroutes at all, or no disagreements listed.
    expect(run(['eval', fixture('labelled.jsonl'), '--max-misroute=']).stderr).toBe('tiergate eval: --max-misroute expects a fraction between 0 and 1, got ""\n');
    expect(run(['eval', fixture('labelled.jsonl'), '--disagreements=']).status).toBe(2);
    expect(run(['keywords']).status).toBe(2);
    // Two files: one is evaluated, never both silently read as one.
    expect(run(['eval', fixture('labelled.jsonl'), fixture('false-weak.jsonl')])).toMatchObject({ status: 2, stderr: `tiergate eval: name one labelled file, got 2: ${fixture('labelled.jsonl')} ${fixture('false-weak.jsonl')}\n` });
    expect(run(['keywords', '--from', fixture('false-weak.jsonl'), '--version', 'v99'])).toMatchObject({ status: 2, stderr: 'tiergate keywords: unknown classifier version "v99"\n' });
    // A config that does not load: its problems, and nothing evaluated.
    const bad = file('tiers: { weak: { model: 7 } }\n');
    const refused = run(['eval', fixture('labelled.jsonl'), '--config', bad]);
    expect([refused.status, refused.stdout, refused.stderr]).toEqual([1, '', `tiergate eval: ${bad}: tiers.weak.model: Invalid input: expected string, received number\n`]);
    const missing = run(['eval', '/nonexistent/labels.jsonl']);
    expect([missing.status, missing.stderr]).toEqual([1, 'tiergate eval: /nonexistent/labels.jsonl: no such file\n']);
    // A directory: one line naming it, in either format (a CSV one crashed with a stack trace until 2026-12-05).
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-eval-dir-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    for (const name of ['labels.csv', 'labels.jsonl']) {
      mkdirSync(join(dir, name));
      expect(run(['eval', join(dir, name)])).toMatchObject({ status: 1, stderr: `tiergate eval: ${join(dir, name)}: a directory, not a labelled file\n` });
    }
  });

  it('keywords prints candidates with counts and an example each', () => {
    const r = run(['keywords', '--from', fixture('false-weak.jsonl'), '--min-rows', '2']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('6 false-weak rows, 2 correctly-weak rows');
    expect(r.stdout).toMatch(/쿠버네티스\s+3\s+0\s+"쿠버네티스에서 파드가 계속 재시작돼요"/);
    expect(r.stdout).toMatch(/python\s+2\s+0\s+"Write a python script to parse logs"/);
  });

  it('keywords reads the config\'s active version unless --version names one; --json says which', () => {
    const active = file('classifier:\n  active: v8\n  versions:\n    v8: { rules: [{ name: keyword, tier: strong, when: [{ anyKeyword: [python] }] }], default: weak }\n');
    const r = run(['keywords', '--from', fixture('false-weak.jsonl'), '--config', active, '--json']);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { version: string; candidates: Array<{ term: string }> };
    expect(out.version).toBe('v8');
    // v8 already sends "python" to the strong tier: it is no candidate there, as it is under v7.
    expect(out.candidates.map((c) => c.term)).not.toContain('python');
    const v7 = JSON.parse(run(['keywords', '--from', fixture('false-weak.jsonl'), '--config', active, '--version', 'v7', '--min-rows', '2', '--json']).stdout) as typeof out;
    expect([v7.version, v7.candidates.map((c) => c.term)]).toEqual(['v7', expect.arrayContaining(['python'])]);
  });
});

describe('tiergate ledger import', () => {
  it('says what is wrong: no log named (exit 2), rows for a sink the config does not have (exit 1, nothing written)', () => {
    const none = run(['ledger', 'import']);
    expect([none.status, none.stderr]).toEqual([2, 'tiergate ledger import: name the log files to read ledger.rows_unsaved and ledger.rows_left_in_spool lines from\n']);
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-import-cli-'));
    const row = sampleRow({ event_id: 'e1', request_id: 'r1' });
    const log = file(`${JSON.stringify({ event: 'ledger.rows_unsaved', sink: 'warehouse', count: 1, rows: [JSON.stringify(row)] })}\n`);
    const config = file(`ledger: { sinks: [{ type: file, dir: ${join(dir, 'ledger')} }] }\n`);
    const unknown = run(['ledger', 'import', '--config', config, log]);
    expect([unknown.status, unknown.stderr]).toEqual([1, `tiergate ledger import: ${log}:1: rows for sink "warehouse", which this config does not have (sinks: file)\n`]);
    expect(existsSync(join(dir, 'ledger'))).toBe(false);
    const empty = run(['ledger', 'import', '--config', config, config]);
    expect([empty.status, empty.stdout]).toEqual([0, 'no ledger.rows_unsaved or ledger.rows_left_in_spool lines found\n']);
    // A directory named the way `ledger rollup --logs` names it (it was "EISDIR: illegal operation on a directory,
    // read", naming nothing), and a missing log, before anything is read.
    expect(run(['ledger', 'import', '--config', config, log, dir])).toMatchObject({ status: 1, stderr: `tiergate ledger import: ${dir}: a directory, not a log file\n` });
    expect(run(['ledger', 'import', '--config', config, join(dir, 'gone.log')]).stderr).toBe(`tiergate ledger import: ${join(dir, 'gone.log')}: no such file\n`);
  });

  it('reads the logs a batch at a time, and still writes nothing when a later line is bad', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-import-cli-'));
    const good = JSON.stringify({ event: 'ledger.rows_left_in_spool', sink: 'file', count: 1, rows: [JSON.stringify(sampleRow({ event_id: 'g1', request_id: 'g1' }))] });
    const bad = JSON.stringify({ event: 'ledger.rows_unsaved', sink: 'file', count: 1, rows: ['{"event_id":'] });
    const config = file(`ledger: { sinks: [{ type: file, dir: ${join(dir, 'ledger')} }] }\n`);
    const r = run(['ledger', 'import', '--config', config, file(`${good}\n${bad}\n`)]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/:2: row 1 is not JSON/);
    expect(existsSync(join(dir, 'ledger'))).toBe(false);
    const ok = run(['ledger', 'import', '--config', config, file(`${good}\n`)]);
    expect([ok.status, ok.stdout]).toEqual([0, 'sink file: 1 row sent (a row it already held is not stored again)\n']);
  });
});

describe('tiergate ledger import, twice, into two sinks', () => {
  it('says per sink how many rows it sent and how many were logged more than once; a second run stores nothing twice', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-import-cli-'));
    const row = (id: string) => JSON.stringify(sampleRow({ event_id: id, request_id: id, timestamp: '2026-11-22T10:00:00.000Z' }));
    const line = (event: string, sink: string, ids: string[]) => JSON.stringify({ event, sink, count: ids.length, rows: ids.map(row) });
    // A spool logged at two exits (the second with one row more), and one unsaved row for the other sink.
    const log = file(
      [line('ledger.rows_left_in_spool', 'file', ['i1', 'i2']), line('ledger.rows_left_in_spool', 'file', ['i1', 'i2', 'i3']), line('ledger.rows_unsaved', 'audit', ['a1'])].join('\n') + '\n',
    );
    const config = file(`ledger: { sinks: [{ type: file, dir: ${join(dir, 'main')} }, { type: file, name: audit, dir: ${join(dir, 'audit')} }] }\n`);
    const said = 'sink file: 3 rows sent (a row it already held is not stored again)\nsink audit: 1 row sent (a row it already held is not stored again)\n2 rows logged more than once, sent once\n';
    const ids = (sinkDir: string) => readFileSync(join(dir, sinkDir, 'ledger-2026-11-22.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).event_id as string);
    for (let i = 0; i < 2; i++) {
      const r = run(['ledger', 'import', '--config', config, log]);
      expect([r.status, r.stdout]).toEqual([0, said]);
      // Written and closed before the command exits, and once however often it runs.
      expect([ids('main'), ids('audit')]).toEqual([['i1', 'i2', 'i3'], ['a1']]);
    }
  });
});

describe('the README walkthrough of the tuning loop', () => {
  it('examples/labelled-prompts.jsonl with examples/classifier-tuning.yaml gives the figures the README shows', () => {
    const ex = (name: string) => fileURLToPath(new URL(`../../examples/${name}`, import.meta.url));
    const r = run(['eval', ex('labelled-prompts.jsonl'), '--config', ex('classifier-tuning.yaml'), '--versions', 'v7,v8', '--json']);
    const out = JSON.parse(r.stdout);
    const pick = (v: { version: string; strong_recall: number; misroute_rate: number; weak_tier_share: number; false_weak: number }) => [v.version, v.strong_recall, v.misroute_rate, v.weak_tier_share, v.false_weak];
    expect(out.versions.map(pick)).toEqual([
      ['v7', 3 / 12, 9 / 30, 27 / 30, 9],
      ['v8', 11 / 12, 1 / 30, 19 / 30, 1],
    ]);
    expect(out.disagreements.rows).toBe(8);
  });
});
