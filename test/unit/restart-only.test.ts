// Which settings of a reloaded config only apply at the next restart (src/config/restart-only.ts), and how a
// reload that changes one is reported: a warning naming it, a gauge per setting, and nothing of its value.
import { describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { RESTART_ONLY_SETTINGS, restartOnlyChanges } from '../../src/config/restart-only.js';
import { configSchema, type ConfigInput } from '../../src/config/schema.js';
import { captureLogger, logEvents, metricValue, runtimeFor, withTempSpool } from '../helpers/tiergate.js';

const REDIS = { url: 'redis://:s3cret-password@redis.internal:6379' };

/** A config that changes each restart-only setting from the defaults, and the settings it changes. */
const CHANGES: Array<[ConfigInput, string[]]> = [
  [{ server: { listen: '0.0.0.0:9102' } }, ['server.listen']],
  [{ server: { admin: '0.0.0.0:9191' } }, ['server.admin']],
  [{ server: { tls: { certFile: '/tls/tls.crt', keyFile: '/tls/tls.key' } } }, ['server.tls']],
  [{ server: { http2StreamResetBurst: 10 } }, ['server.http2StreamResetBurst']],
  [{ server: { http2StreamResetRate: 10 } }, ['server.http2StreamResetRate']],
  [{ logging: { level: 'debug' } }, ['logging.level']],
  [{ ledger: { sinks: [{ type: 'file', dir: './elsewhere' }] } }, ['ledger.sinks']],
  [{ ledger: { spoolDir: './elsewhere/spool' } }, ['ledger.spoolDir']],
  [{ ledger: { queueSize: 5 } }, ['ledger.queueSize']],
  [{ ledger: { batchSize: 5 } }, ['ledger.batchSize']],
  [{ ledger: { writeTimeoutMs: 5 } }, ['ledger.writeTimeoutMs']],
  [{ ledger: { retryMs: 5 } }, ['ledger.retryMs']],
  [{ ledger: { lingerMs: 5 } }, ['ledger.lingerMs']],
  [{ ledger: { logSpoolAtExit: true } }, ['ledger.logSpoolAtExit']],
  [{ ledger: { spoolMaxBytes: 4096 } }, ['ledger.spoolMaxBytes']],
  [{ budgets: { store: 'redis', redis: REDIS } }, ['budgets.store', 'budgets.redis']],
  [{ budgets: { redis: REDIS } }, ['budgets.redis']],
  [{ cache: { store: 'redis', redis: REDIS } }, ['cache.store', 'cache.redis']],
  [{ cache: { redis: REDIS } }, ['cache.redis']],
  [{ cache: { maxEntries: 5 } }, ['cache.maxEntries']],
  [{ cache: { maxBytes: 1_000_000 } }, ['cache.maxBytes']],
  [{ cache: { semantic: { embedder: { type: 'openai', url: 'http://embed.internal/v1', model: 'e5' } } } }, ['cache.semantic.embedder']],
  [{ routing: { affinity: { store: 'memory' } } }, ['routing.affinity.store']],
  [{ routing: { affinity: { store: 'redis', redis: REDIS } } }, ['routing.affinity.store', 'routing.affinity.redis']],
  [{ routing: { affinity: { redis: REDIS } } }, ['routing.affinity.redis']],
  [{ routing: { affinity: { maxEntries: 5 } } }, ['routing.affinity.maxEntries']],
];

/** Settings every request reads from the config in force: a reload changes them at once. */
const LIVE: ConfigInput[] = [
  { tiers: { weak: { model: 'small-v2' }, strong: { model: 'large-v2' } } },
  { tenants: { '*': { requestsPerMinute: 3 } } },
  { budgets: { onStoreFailure: 'closed', breaker: { failures: 9 } } },
  { cache: { semantic: { threshold: 0.97 } } },
  { routing: { affinity: { ttlSeconds: 60, deadlineMs: 5 } } },
  { ledger: { featureHeader: 'x-feature' } },
  { server: { shutdownGraceMs: 1234, drainDelayMs: 0 } },
  { logging: { logPrompts: true } },
  { envoy: { failureRule: 'continue' } },
];

const defaults = configSchema.parse({});

describe('restart-only settings', () => {
  it.each(CHANGES)('%j changes %j, and nothing else restart-only', (input, settings) => {
    expect(restartOnlyChanges(defaults, configSchema.parse(input))).toEqual(settings);
    // …and in the other direction, a reload back to the startup value.
    expect(restartOnlyChanges(configSchema.parse(input), defaults)).toEqual(settings);
  });

  it('the table above covers every restart-only setting', () => {
    expect(new Set(CHANGES.flatMap(([, s]) => s))).toEqual(new Set(RESTART_ONLY_SETTINGS));
  });

  it('a setting the command line or the environment decides is never flagged: the file does not set it', () => {
    const next = configSchema.parse({ server: { listen: '0.0.0.0:9102', admin: '0.0.0.0:9190' }, logging: { level: 'debug' }, budgets: { store: 'redis', redis: { url: 'redis://r:6379' } } });
    expect(restartOnlyChanges(defaults, next, ['server.listen', 'server.admin', 'logging.level'])).toEqual(['budgets.store', 'budgets.redis']);
    expect(restartOnlyChanges(defaults, next, ['server.listen'])).toEqual(['server.admin', 'logging.level', 'budgets.store', 'budgets.redis']);
  });

  it.each(LIVE)('%j reloads live: no restart is asked for', (input) => {
    expect(restartOnlyChanges(defaults, configSchema.parse(input))).toEqual([]);
  });
});

describe('a reload that changes a restart-only setting', () => {
  it('applies the rest, warns naming the settings (not their values), and sets a gauge per setting until a reload reverts it', async () => {
    const { log, logs } = captureLogger('info');
    const started = withTempSpool({});
    const app = createApp(runtimeFor(started), log);
    try {
      const moved = JSON.stringify({ ledger: started.ledger, tiers: { weak: { model: 'small-v2' }, strong: { model: 'large-v2' } }, budgets: { store: 'redis', redis: REDIS } });
      expect(await app.config.apply(moved, {}, app.reloadListener)).toBe(true);
      // The rest of the reload is in force once it is applied.
      expect(app.config.current().config.tiers.weak?.model).toBe('small-v2');
      expect(await metricValue(app, 'tiergate_config_restart_required', { setting: 'budgets.store' })).toBe(1);
      expect(await metricValue(app, 'tiergate_config_restart_required', { setting: 'budgets.redis' })).toBe(1);
      expect(await metricValue(app, 'tiergate_config_restart_required')).toBe(2);
      const warned = logEvents(logs, 'config.restart_required');
      expect(warned).toEqual([expect.objectContaining({ level: 'warn', settings: ['budgets.store', 'budgets.redis'] })]);
      expect(logs.join('')).not.toContain('s3cret-password');
      expect(logs.join('')).not.toContain('redis.internal');

      // Back to what the process started with: nothing is waiting for a restart any more.
      expect(await app.config.apply(JSON.stringify({ ledger: started.ledger, tiers: { weak: { model: 'small-v3' }, strong: { model: 'large-v3' } } }), {}, app.reloadListener)).toBe(true);
      expect(await metricValue(app, 'tiergate_config_restart_required')).toBe(0);
      expect(logs.filter((l) => l.includes('config.restart_required'))).toHaveLength(1);
    } finally {
      await app.shutdown(100);
    }
  });
});
