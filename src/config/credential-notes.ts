// Paths whose answer is itself a credential: OpenAI's Realtime client secrets (`ek_…`, valid from 10 seconds to
// 2 hours, for as many sessions as a client opens meanwhile; the beta session endpoints returned one too). Sent
// there with a tier's credential, any tenant's request mints a key billed to that account, which its client then
// uses with OpenAI directly: those sessions never pass through Envoy, so no ACL, limit, budget or ledger row applies
// to them. A config may mean that (a voice app's browser clients), so a note.
import type { ConfigNote } from './config-note.js';
import type { Runtime } from './runtime.js';

const MINTING_PATHS: ReadonlySet<string> = new Set(['/v1/realtime/client_secrets', '/v1/realtime/sessions', '/v1/realtime/transcription_sessions']);

export function mintedCredentials(rt: Runtime): ConfigNote[] {
  const notes: ConfigNote[] = [];
  for (const [path, { tier: name }] of rt.unclassifiedPaths) {
    const tier = name === undefined ? undefined : rt.tiers.get(name);
    if (!MINTING_PATHS.has(path) || tier?.authorization === undefined) continue;
    notes.push({
      path: `routing.unclassifiedPaths.${path}`,
      message: `it goes to tier '${tier.name}' with that tier's credential, and its answer is a key for the Realtime API, which any tenant allowed on this path can mint and use with the provider directly, where no limit, budget or ledger row of tiergate's applies; leave the path out unless that is meant`,
    });
  }
  return notes;
}
