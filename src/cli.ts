#!/usr/bin/env node
// The tiergate command.
import { readFile } from 'node:fs/promises';
import { compileConfigText } from './config/runtime.js';
import { regexSafety } from './classify/regex-safety.js';
import { checkNotes } from './config/notes.js';
import { devBanner, startDevStack } from './dev/dev-stack.js';
import { createMockBackend } from './dev/mock-backend.js';
import { listenOn } from './admin-server.js';
import { ConfigError, serve } from './main.js';
import { LEDGER_USAGE, ledgerImport, ledgerRollup } from './ledger/ledger-command.js';
import { CANARY_USAGE, canaryCommand } from './canary/canary-command.js';
import { EVAL_USAGE, evalCommand, keywordsCommand } from './eval/eval-command.js';
import { hostPortFlag, numberFlag, parseFlags, UsageError } from './usage-error.js';
import { BUILD } from './version.js';

const USAGE = `usage:
  tiergate serve [--config FILE] [--listen HOST:PORT] [--admin HOST:PORT]
  tiergate dev [--config FILE] [--port 8080] [--listen 127.0.0.1:9002] [--admin 127.0.0.1:9090] [--body-mode buffered|duplex]
  tiergate config check FILE
  tiergate mock --name NAME [--listen HOST:PORT] [--latency-ms N] [--chunk-delay-ms N] [--served-model-name M1,M2]
${LEDGER_USAGE}${EVAL_USAGE}${CANARY_USAGE}  tiergate --version
`;

// The commands that run until stopped: a failure to start exits at once (see the end of this file).
const SERVERS = new Set(['serve', 'dev', 'mock']);

/**
 * A reader that stops reading (`tiergate keywords … | head`) closes the pipe under a command: the rest of its
 * output has nowhere to go, which is no failure of the command. It was an unhandled 'error' event: a stack trace
 * and exit 1. Now the output stops, and the command finishes and exits with its own code: `eval --check | head`
 * in a CI step still fails when the check does, and a canary check still moves its weights. A server goes on
 * serving: `tiergate dev | head -1` crashed on its banner, and `tiergate mock` on its one line, while the log
 * (pino's own stream) just stops. Another error on the stream is left to whoever else listens for it (the
 * ledger's stdout sink, which spools its rows), and with nobody else is unhandled, as before.
 */
function quietBrokenPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE' && stream.listenerCount('error') === 1) throw err;
  });
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  quietBrokenPipe(process.stdout);
  quietBrokenPipe(process.stderr);
  // `tiergate eval --help` asks for help, not for an option parser's complaint about an unknown flag.
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  switch (command) {
    case 'serve': {
      const { values } = parseFlags({ args: rest, options: { config: { type: 'string' }, listen: { type: 'string' }, admin: { type: 'string' } } });
      await serve({ configFile: values.config, listen: hostPortFlag('listen', values.listen), admin: hostPortFlag('admin', values.admin), handleSignals: true });
      return -1;
    }
    case 'dev': {
      const { values } = parseFlags({
        args: rest,
        options: { config: { type: 'string' }, port: { type: 'string' }, listen: { type: 'string' }, admin: { type: 'string' }, 'body-mode': { type: 'string' } },
      });
      const bodyMode = values['body-mode'] ?? 'buffered';
      if (bodyMode !== 'buffered' && bodyMode !== 'duplex') {
        process.stderr.write(`tiergate dev: --body-mode is buffered or duplex, not "${bodyMode}"\n`);
        return 2;
      }
      const port = values.port === undefined ? 8080 : numberFlag('port', values.port, { min: 0, max: 65_535, integer: true, expects: 'a port number, 0 to 65535' });
      const stack = await startDevStack({
        configFile: values.config,
        port,
        grpcListen: hostPortFlag('listen', values.listen),
        adminListen: hostPortFlag('admin', values.admin),
        handleSignals: true,
        bodyMode,
      });
      process.stdout.write(devBanner(stack));
      return -1;
    }
    case 'config': {
      const [sub, file, ...extra] = rest;
      if (sub !== 'check') return usage(sub === undefined ? 'tiergate config: name a subcommand: check FILE' : `tiergate config: unknown subcommand "${sub}" (check FILE)`);
      if (!file || extra.length > 0) return usage(`tiergate config check: name one file, got ${rest.length - 1}`);
      return configCheck(file);
    }
    case 'mock': {
      const { values } = parseFlags({
        args: rest,
        options: { name: { type: 'string' }, listen: { type: 'string' }, 'latency-ms': { type: 'string' }, 'chunk-delay-ms': { type: 'string' }, 'served-model-name': { type: 'string' } },
      });
      if (!values.name) return usage('tiergate mock: --name is required (the model name it answers as)');
      const listen = hostPortFlag('listen', values.listen) ?? '0.0.0.0:8000';
      const ms = (flag: 'latency-ms' | 'chunk-delay-ms', fallback: number) =>
        values[flag] === undefined ? fallback : numberFlag(flag, values[flag], { min: 0, max: Number.MAX_SAFE_INTEGER, expects: 'a number of milliseconds' });
      const servedModels = values['served-model-name']?.split(',').map((m) => m.trim());
      if (servedModels?.some((m) => m === '')) return usage('tiergate mock: --served-model-name takes model names separated by commas, none of them empty');
      const s = createMockBackend({ name: values.name, latencyMs: ms('latency-ms', 0), chunkDelayMs: ms('chunk-delay-ms', 20), ...(servedModels ? { servedModels } : {}) });
      const port = await listenOn(s, listen);
      process.stdout.write(`mock backend ${values.name} listening on ${port}\n`);
      return -1;
    }
    case 'ledger': {
      const [sub, ...args] = rest;
      if (sub === 'import') return subcommand('ledger import', () => ledgerImport(args));
      if (sub !== 'rollup') return usage(sub === undefined ? 'tiergate ledger: name a subcommand: rollup or import' : `tiergate ledger: unknown subcommand "${sub}" (rollup or import)`);
      return subcommand('ledger rollup', () => ledgerRollup(args, USAGE));
    }
    case 'canary':
      return subcommand('canary', () => canaryCommand(rest, (line) => process.stdout.write(`${line}\n`), process.env));
    case 'eval':
      return subcommand('eval', () => evalCommand(rest, (text) => process.stdout.write(text)));
    case 'keywords':
      return subcommand('keywords', () => keywordsCommand(rest, (text) => process.stdout.write(text)));
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    case '--version':
    case 'version':
      // Which build a pod runs: `kubectl exec POD -- node dist/cli.js --version` (the log's server.started says it too).
      process.stdout.write(`tiergate ${BUILD.version} (Node ${BUILD.node_version})\n`);
      return 0;
  }
  return usage(command === undefined ? undefined : `tiergate: unknown command "${command}"`);
}

/** A usage mistake: the line saying what was wrong (when something was given), then the usage, on stderr; exit 2. */
function usage(reason: string | undefined): number {
  process.stderr.write(`${reason === undefined ? '' : `${reason}\n`}${USAGE}`);
  return 2;
}

/** A failing subcommand says what went wrong on one line: exit 2 for a usage mistake, 1 otherwise. */
async function subcommand(name: string, run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (e) {
    process.stderr.write(`tiergate ${name}: ${(e as Error).message}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}

async function configCheck(file: string): Promise<number> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    process.stderr.write(`${file}: ${(e as Error).message}\n`);
    return 1;
  }
  const compiled = compileConfigText(text, process.env, file);
  const safety = compiled.ok ? await regexSafety(compiled.runtime.config) : { problems: [], unchecked: [] };
  const problems = compiled.ok ? safety.problems : compiled.problems;
  for (const u of safety.unchecked) process.stderr.write(`${file}: ${u.path}: note: ${u.message}\n`);
  if (compiled.ok) {
    for (const n of checkNotes(compiled.runtime, Date.now())) process.stderr.write(`${file}: ${n.path}: note: ${n.message}\n`);
  }
  if (!compiled.ok || problems.length > 0) {
    // A problem of the whole file (it cannot be read or parsed) is named by the file alone, not twice.
    for (const p of problems) process.stderr.write(p.path === file ? `${file}: ${p.message}\n` : `${file}: ${p.path}: ${p.message}\n`);
    process.stderr.write(`${problems.length} problem${problems.length === 1 ? '' : 's'}\n`);
    return 1;
  }
  process.stdout.write(`${file}: ok (version ${compiled.runtime.version}, classifier ${compiled.runtime.classifierVersion})\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) process.stderr.write(`invalid config:\n${err.message}\n`);
    else process.stderr.write(`tiergate: ${err instanceof Error ? err.message : String(err)}\n`);
    const code = err instanceof UsageError ? 2 : 1;
    // A server that failed to start has nothing left to finish, while a check its start gave up on (a directory
    // on a mount that does not answer) would keep the process from ending.
    if (SERVERS.has(process.argv[2] ?? '')) process.exit(code);
    process.exitCode = code;
  },
);
