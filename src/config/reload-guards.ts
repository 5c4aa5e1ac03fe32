// What a reload may not do that a start may. A file is read whole at start, but on reload it may be read while
// it is still being written (a writer that pauses past the debounce), and what has arrived so far can be a valid
// config on its own. Most such halves fail closed (keys, public paths and tenants are only lost). A half that
// ends before `auth:` does not: the embedded `auth.mode` is `none`, so every request would be let in as tenant
// "default" until the rest arrived. The shipped kgateway config has `auth:` after `tiers:`, so that half exists.
// Turning authentication off is rare and deliberate, so it asks for a restart, which reads the whole file.
import type { InterpolationProblem } from './interpolate.js';
import type { Config } from './schema.js';

/** Why `next` may not replace `current` on a reload; [] when it may. */
export function refusedOnReload(current: Config, next: Config): InterpolationProblem[] {
  if (current.auth.mode === 'api_key' && next.auth.mode !== 'api_key') {
    return [
      {
        path: 'auth.mode',
        message:
          `a reload cannot turn authentication off (api_key → ${next.auth.mode}): every request would be let in as tenant "default". ` +
          'A file read while it is still being written, before its auth section, looks the same. The config in force is kept; ' +
          'to run without authentication, restart tiergate on this file',
      },
    ];
  }
  return [];
}
