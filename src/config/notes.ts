// Every note about a valid config, in one place: `tiergate config check` prints them all, and tiergate logs the
// ones about how it will serve requests, at start and on every reload, each under an event of its own. (The
// Redis-sharing note is logged with the eviction checks, and expiring keys go to a metric.)
import { fixedTiersExcluded } from './acl-notes.js';
import type { ConfigNote } from './config-note.js';
import { mintedCredentials } from './credential-notes.js';
import { responsesNotIsolated } from './isolation-notes.js';
import { expiringKeys } from './key-notes.js';
import { unpricedAudioPaths, unpricedToolCalls, untieredOpenAiPrices } from './price-notes.js';
import { cacheSharesRedis } from './redis-sharing.js';
import { sharedSafetyIdentity } from './safety-notes.js';
import type { Runtime } from './runtime.js';

/** The notes tiergate logs when it loads a config, with the event each is logged under. */
export function loadNotes(rt: Runtime): Array<ConfigNote & { event: string }> {
  const as = (event: string, notes: ConfigNote[]) => notes.map((n) => ({ ...n, event }));
  return [
    ...as('config.tier_excluded', fixedTiersExcluded(rt)),
    ...as('config.service_tiers_unpriced', untieredOpenAiPrices(rt)),
    ...as('config.tool_calls_unpriced', unpricedToolCalls(rt)),
    ...as('config.audio_unpriced', unpricedAudioPaths(rt)),
    ...as('config.responses_not_isolated', responsesNotIsolated(rt)),
    ...as('config.safety_identifier_unset', sharedSafetyIdentity(rt)),
    ...as('config.credential_minting', mintedCredentials(rt)),
  ];
}

/** Every note `tiergate config check` prints for a config, at `now` (for keys about to expire). */
export function checkNotes(rt: Runtime, now: number): ConfigNote[] {
  return [...cacheSharesRedis(rt.config), ...loadNotes(rt), ...expiringKeys(rt.config, now)];
}
