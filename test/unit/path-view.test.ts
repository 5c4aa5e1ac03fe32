// backendView: the path as a backend such as vLLM (uvicorn) reads it, so tiergate can see through a disguised one.
import { describe, expect, it } from 'vitest';
import { backendView } from '../../src/path-segment.js';

describe('backendView', () => {
  it.each([
    ['/v1/chat/completions', '/v1/chat/completions'],
    ['/v1/chat/%63ompletions', '/v1/chat/completions'],
    ['/v1/chat%2Fcompletions', '/v1/chat/completions'],
    ['/v1/chat%2fcompletions', '/v1/chat/completions'],
    ['/v1//chat/completions', '/v1/chat/completions'],
    ['/v1/chat/completions/', '/v1/chat/completions'],
    ['/v1/./chat/completions', '/v1/chat/completions'],
    ['/v1/x/../chat/completions', '/v1/chat/completions'],
    ['/v1/%2e%2e/v1/embeddings', '/v1/embeddings'],
    ['/../../v1/embeddings', '/v1/embeddings'],
    ['/', '/'],
    ['', '/'],
  ])('%s → %s', (path, view) => {
    expect(backendView(path)).toBe(view);
  });

  it('a malformed escape is no path at all', () => {
    expect(backendView('/v1/chat/%E0%A4%A')).toBeUndefined();
    expect(backendView('/v1/%zz')).toBeUndefined();
  });
});
