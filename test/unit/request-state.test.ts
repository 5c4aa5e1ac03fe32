// Every stage reads the per-request state; V8 must keep it in fast (hidden-class) mode, not dictionary mode.
// bench:ab measured 52 us per request between the two under load (docs/performance.md).
import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { StreamRequestState } from '../../src/pipeline/request-state.js';
import type { Runtime } from '../../src/config/runtime.js';
import type { Logger } from '../../src/telemetry/logger.js';

setFlagsFromString('--allow-natives-syntax');
// Compiled after the flag is set, so the V8 intrinsic is allowed in it.
const hasFastProperties = new Function('o', 'return %HasFastProperties(o)') as (o: object) => boolean;

describe('per-request state', () => {
  it('keeps fast properties after every field the stages set', () => {
    const logged: object[] = [];
    const log = { child: (b: object) => (logged.push(b), log) } as unknown as Logger;
    const s = new StreamRequestState('req-1', {} as Runtime, '/v1/chat/completions', 'POST', { get: () => undefined, has: () => false }, log);
    s.tenant = 'acme';
    s.body = Buffer.from('{}');
    s.llm = { endpoint: 'chat', json: {}, exact: undefined, model: 'auto', stream: false, messages: [], stateful: false };
    s.route = { tier: { name: 'weak' } as never, source: 'classifier' };
    s.cache = { status: 'miss', reason: 'not_found', lookupMs: 0 };
    s.newBody = Buffer.from('{}');
    s.setHeaders.push(['x-llm-tier', 'weak']);
    expect(s.log).toBe(s.log); // made once, on first use
    expect(logged).toEqual([{ request_id: 'req-1' }]);
    expect(hasFastProperties(s)).toBe(true);
  });

  it('the check can fail: an object literal with a getter is in dictionary mode', () => {
    let cached: number | undefined;
    const literal = { a: 1, get lazy() { return (cached ??= 2); } };
    expect(hasFastProperties(literal)).toBe(false);
  });
});
