// Gateway keys (src/auth/api-keys.ts): which header value is a key, which paths are public, which principal a key
// is. The tenants-auth integration suite drives these through Envoy's stream; these tables hold the edges.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileAuth, findPrincipal, presentedKey, sha256Hex } from '../../src/auth/api-keys.js';
import type { InterpolationProblem } from '../../src/config/interpolate.js';
import { authSchema } from '../../src/config/policy-schema.js';

const compile = (o: Record<string, unknown>, problems: InterpolationProblem[] = []) => compileAuth(authSchema.parse({ mode: 'api_key', ...o }), problems);

describe('the presented key', () => {
  it.each([
    ['Bearer sk-1', undefined, 'sk-1'],
    ['bearer sk-1', undefined, 'sk-1'], // the scheme is case-insensitive (RFC 9110 §11.1)
    ['Bearer   sk-1  ', undefined, 'sk-1'],
    ['Bearer sk-1', 'sk-2', 'sk-2'], // both sent: x-api-key is read first
    [undefined, '  sk-2 ', 'sk-2'],
    [undefined, '   ', undefined],
    [undefined, '', undefined],
    [undefined, undefined, undefined],
    ['', undefined, undefined],
    ['sk-1', undefined, undefined], // no scheme
    ['Basic c2stMTo=', undefined, undefined],
    ['XBearer sk-1', undefined, undefined],
    ['Bearer', undefined, undefined],
    ['Bearer sk-1 sk-2', undefined, undefined], // two tokens are not a key
  ])('authorization %j, x-api-key %j → %j', (authorization, xApiKey, key) => {
    expect(presentedKey(authorization, xApiKey)).toBe(key);
  });
});

describe('public paths', () => {
  const auth = compile({ publicPaths: ['/v1/models', '/healthz', '/public/*', '/docs*'] });

  it.each([
    ['/v1/models', true],
    ['/healthz', true],
    ['/public/a', true],
    ['/public/openapi.v1.json', true], // a dot inside a segment is not a dot segment
    ['/public/', true],
    ['/docs', true],
    ['/docs/api', true],
    // An exact path is that path only: not a prefix, not one character less or more.
    ['/v1/models/gpt-4o', false],
    ['/v1/model', false],
    ['/v1/modelsX', false],
    ['/healthz/', false],
    ['/health', false],
    ['/public', false], // the prefix is "/public/"
    ['/publicity', false],
    ['/v1/chat/completions', false],
    // A path a backend could read as another one is never public.
    ['/public/../v1/responses', false],
    ['/public/./a', false],
    ['/public/%2e%2e/v1/responses', false],
    ['/public/..%2fv1', false],
    ['/public\\..\\v1', false],
    ['/docs/..', false],
  ])('%s public: %s', (path, open) => {
    expect(auth.isPublic(path)).toBe(open);
  });

  it('none by default', () => {
    expect(compile({}).isPublic('/v1/models')).toBe(false);
  });
});

describe('principals', () => {
  it('a key is found by its digest; the first listed wins when two share one; an unknown key is none', () => {
    const auth = compile({
      keys: [
        { id: 'a', sha256: sha256Hex('sk-a'), tenant: 'acme' },
        { id: 'b', sha256: sha256Hex('sk-b').toUpperCase(), tenants: ['globex', 'initech'] },
        { id: 'a-again', sha256: sha256Hex('sk-a'), tenant: 'umbrella' },
      ],
    });
    expect(findPrincipal(auth, 'sk-a')).toMatchObject({ id: 'a', tenant: 'acme' });
    expect(findPrincipal(auth, 'sk-b')).toMatchObject({ id: 'b', tenant: undefined, tenants: new Set(['globex', 'initech']) });
    expect(findPrincipal(auth, 'sk-c')).toBeUndefined();
    expect(findPrincipal(auth, 'sk-a ')).toBeUndefined();
    expect(findPrincipal(auth, 'SK-A')).toBeUndefined();
    expect(findPrincipal(auth, sha256Hex('sk-a'))).toBeUndefined(); // the digest itself is not a key
  });

  it('expiry is read as an instant (its offset counts); a key without one never expires; a key with a fixed tenant acts for none other', () => {
    const auth = compile({
      keys: [
        { id: 'e', sha256: sha256Hex('sk-e'), tenant: 'acme', expiresAt: '2026-01-31T00:00:00-05:00' },
        { id: 'n', sha256: sha256Hex('sk-n'), tenant: 'acme' },
      ],
    });
    expect(findPrincipal(auth, 'sk-e')?.expiresAt).toBe(Date.UTC(2026, 0, 31, 5));
    expect(findPrincipal(auth, 'sk-n')?.expiresAt).toBeUndefined();
    expect(findPrincipal(auth, 'sk-n')?.tenants.size).toBe(0);
  });

  it('a digest from a file (a mounted Secret): its surrounding whitespace goes; a missing file, or one holding anything but exactly one digest, is a problem, and that key is left out', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-keys-'));
    writeFileSync(join(dir, 'good'), `  ${sha256Hex('sk-f')}\n`);
    writeFileSync(join(dir, 'bad'), 'not a digest\n');
    writeFileSync(join(dir, 'long'), `${sha256Hex('sk-f')}0\n`);
    writeFileSync(join(dir, 'prefixed'), `x${sha256Hex('sk-f')}\n`);
    const problems: InterpolationProblem[] = [];
    const auth = compile(
      {
        keys: [
          { id: 'f', sha256File: join(dir, 'good'), tenant: 'acme' },
          { id: 'bad', sha256File: join(dir, 'bad'), tenant: 'acme' },
          { id: 'gone', sha256File: join(dir, 'missing'), tenant: 'acme' },
          { id: 'long', sha256File: join(dir, 'long'), tenant: 'acme' },
          { id: 'prefixed', sha256File: join(dir, 'prefixed'), tenant: 'acme' },
        ],
      },
      problems,
    );
    expect(auth.principals.map((p) => p.id)).toEqual(['f']);
    expect(findPrincipal(auth, 'sk-f')?.id).toBe('f');
    expect(problems.map((p) => p.path)).toEqual(['auth.keys[1].sha256File', 'auth.keys[2].sha256File', 'auth.keys[3].sha256File', 'auth.keys[4].sha256File']);
    expect(problems[0]?.message).toBe('file must hold 64 hex characters (a SHA-256 digest)');
    expect(problems[1]?.message).toContain('ENOENT');
  });
});
