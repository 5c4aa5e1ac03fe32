// Models sent to OpenAI whose prices list no service tiers. OpenAI bills a flex or priority answer at that tier's
// prices and says so in the answer, but a model priced without `serviceTiers` is priced alike on every tier
// (right for self-hosted models): its priority rows would show ~57% of what they cost, and nothing would say
// so. A valid config, so a note.
import type { ConfigNote } from './config-note.js';
import type { Runtime } from './runtime.js';

export function untieredOpenAiPrices(rt: Runtime): ConfigNote[] {
  const notes: ConfigNote[] = [];
  const seen = new Set<string>();
  for (const t of rt.tiers.values()) {
    if (t.provider !== 'openai') continue;
    const found = rt.prices.lookup(t.model);
    if (!found || 'perToken' in found.price || found.price.serviceTiers !== undefined || seen.has(found.model)) continue;
    seen.add(found.model);
    notes.push({
      path: `tiers.${t.name}`,
      message: `its provider is openai, but the price of '${t.model}' lists no serviceTiers: a flex or priority answer would be priced as default; list those tiers' prices under prices.models, or limit what plans may ask for (serviceTiers)`,
    });
  }
  return notes;
}
