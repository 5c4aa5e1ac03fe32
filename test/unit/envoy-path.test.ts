// The :path the local data plane hands tiergate: what envoy.yaml's normalize_path and merge_slashes make of it.
import { describe, expect, it } from 'vitest';
import { envoyNormalizedPath } from '../../src/dev/envoy-path.js';

describe("the shipped Envoy's path normalisation (normalize_path, then merge_slashes)", () => {
  it.each([
    // RFC 3986 §5.2.4's own examples of dot-segment removal.
    ['/a/b/c/./../../g', '/a/g'],
    ['mid/content=5/../6', 'mid/6'],
    // Escapes of unreserved characters are decoded (§6.2.2.2), then dot segments go, then slashes merge.
    ['/v1/chat/%63ompletions', '/v1/chat/completions'],
    ['/v1/chat/%7Ecompletions', '/v1/chat/~completions'],
    ['/v1/%2e%2E/v1/chat/completions', '/v1/chat/completions'],
    ['/v1/x/../chat/completions', '/v1/chat/completions'],
    ['/v1/./chat/completions', '/v1/chat/completions'],
    ['/../v1/models', '/v1/models'],
    ['/v1/models/.', '/v1/models/'],
    ['/v1//chat/completions', '/v1/chat/completions'],
    ['//v1/chat/completions', '/v1/chat/completions'],
    ['/v1/x//../chat/completions', '/v1/x/chat/completions'],
    // Left as they are: reserved escapes (no case normalisation either), a trailing slash, the query.
    ['/v1/chat%2Fcompletions', '/v1/chat%2Fcompletions'],
    ['/v1/chat%2fcompletions', '/v1/chat%2fcompletions'],
    ['/v1/chat/completions/', '/v1/chat/completions/'],
    ['/v1/models?after=%63&x=//./', '/v1/models?after=%63&x=//./'],
    ['/v1/chat/%zzcompletions', '/v1/chat/%zzcompletions'],
    ['/', '/'],
  ])('%s → %s', (path, normalized) => {
    expect(envoyNormalizedPath(path)).toBe(normalized);
  });
});
