// tiergate's own version, from its package.json: one directory above this module both in src/ (tsx) and in
// dist/ (the build, which the image ships beside package.json). Read once, at import.
import { readFileSync } from 'node:fs';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
