// Tiers sent to OpenAI on behalf of several tenants without a safety identifier. OpenAI's safety checks act on
// the end user a request names, and otherwise on the organisation: repeated high-risk requests stop the
// organisation's access to a model. Behind tiergate every tenant shares one organisation, so one tenant's
// requests would cut off all of them. A valid config (one tenant, or a provider without such checks), so a note.
import type { ConfigNote } from './config-note.js';
import type { Runtime } from './runtime.js';

export function sharedSafetyIdentity(rt: Runtime): ConfigNote[] {
  // Without keys every caller is one tenant: nothing to tell apart.
  if (rt.auth.mode === 'none') return [];
  const notes: ConfigNote[] = [];
  for (const t of rt.tiers.values()) {
    if (t.provider !== 'openai' || t.safetyIdKey !== undefined) continue;
    notes.push({
      path: `tiers.${t.name}`,
      message: "its provider is openai and gateway keys are on, but it has no safetyIdentifierSecretEnv: OpenAI would see every tenant's requests as one organisation's, and may stop that organisation's access for one tenant's; set it to send each tenant (and the end user the client names) as a safety_identifier",
    });
  }
  return notes;
}
