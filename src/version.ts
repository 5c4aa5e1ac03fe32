// tiergate's own version, from its package.json: one directory above this module both in src/ (tsx) and in
// dist/ (the build, which the image ships beside package.json). Read once, at import.
import { readFileSync } from 'node:fs';

const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** The build this process runs, as `server.started` logs it and `tiergate_build_info` labels it. */
export const BUILD: Readonly<{ version: string; node_version: string }> = Object.freeze({ version: VERSION, node_version: process.versions.node });
