// Gateway keys that have expired or soon will (auth.keys[].expiresAt). Still a valid config: an expired key is
// refused at the door (401 expired_api_key), and listing it harms nothing, so `tiergate config check` says so
// rather than failing. The metric tiergate_api_key_expiry_timestamp_seconds carries the same to alerts.
import type { ConfigNote } from './config-note.js';
import type { Config } from './schema.js';

/** How far ahead an expiry is worth a note. */
export const KEY_EXPIRY_NOTICE_MS = 14 * 24 * 3600 * 1000;

export function expiringKeys(config: Pick<Config, 'auth'>, now: number): ConfigNote[] {
  const notes: ConfigNote[] = [];
  config.auth.keys.forEach((k, i) => {
    if (k.expiresAt === undefined) return;
    const at = Date.parse(k.expiresAt);
    if (at - now > KEY_EXPIRY_NOTICE_MS) return;
    const when = new Date(at).toISOString();
    notes.push({
      path: `auth.keys[${i}] (${k.id})`,
      message: at <= now ? `expired at ${when}: it is refused (401 expired_api_key); remove it once its clients have moved` : `expires at ${when}, in ${Math.ceil((at - now) / 86_400_000)} day(s): give its clients a new key before then`,
    });
  });
  return notes;
}
