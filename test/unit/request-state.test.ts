// Every stage reads the per-request state; V8 must keep it in fast (hidden-class) mode, not dictionary mode.
// bench:ab measured 52 us per request between the two under load (docs/performance.md).
import { setFlagsFromString } from 'node:v8';
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
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
    s.traceContext = undefined;
    s.callMetadata = { get: () => undefined, has: () => false };
    expect(s.log).toBe(s.log); // made once, on first use
    expect(logged).toEqual([{ request_id: 'req-1' }]);
    expect(hasFastProperties(s)).toBe(true);
  });

  describe("its log lines name the request's trace", () => {
    const ENVOY = '4bf92f3577b34da6a3ce929d0e0e4736';
    const CLIENT = '0af7651916cd43dd8448eb211c80319c';
    const headers = (tp?: string) => ({ get: (n: string) => (n === 'traceparent' ? tp : undefined), has: (n: string) => n === 'traceparent' && tp !== undefined });
    const bindingsOf = (s: StreamRequestState, logged: object[]) => (s.log, logged[0]);
    const make = (request: ReturnType<typeof headers>) => {
      const logged: object[] = [];
      const log = { child: (b: object) => (logged.push(b), log) } as unknown as Logger;
      return { s: new StreamRequestState('req-2', {} as Runtime, '/v1/chat/completions', 'POST', request, log), logged };
    };

    it("tracing off: the ext_proc call's traceparent, else the request's, else none", () => {
      const a = make(headers(`00-${CLIENT}-b7ad6b7169203331-01`));
      a.s.callMetadata = headers(`00-${ENVOY}-00f067aa0ba902b7-01`);
      expect(bindingsOf(a.s, a.logged)).toEqual({ request_id: 'req-2', trace_id: ENVOY });
      const b = make(headers(`00-${CLIENT}-b7ad6b7169203331-01`));
      expect(bindingsOf(b.s, b.logged)).toEqual({ request_id: 'req-2', trace_id: CLIENT });
      const c = make(headers('not-a-traceparent'));
      expect(bindingsOf(c.s, c.logged)).toEqual({ request_id: 'req-2' });
    });

    it("tracing on: the stream span's trace and span ids", () => {
      const x = make(headers(`00-${CLIENT}-b7ad6b7169203331-01`));
      x.s.traceContext = trace.setSpanContext(ROOT_CONTEXT, { traceId: ENVOY, spanId: '1111111111111111', traceFlags: 1 });
      expect(bindingsOf(x.s, x.logged)).toEqual({ request_id: 'req-2', trace_id: ENVOY, span_id: '1111111111111111' });
    });
  });

  it('the check can fail: an object literal with a getter is in dictionary mode', () => {
    let cached: number | undefined;
    const literal = { a: 1, get lazy() { return (cached ??= 2); } };
    expect(hasFastProperties(literal)).toBe(false);
  });
});
