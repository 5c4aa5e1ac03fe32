// A client that drives an ext_proc server the way Envoy's ext_proc filter does, message for message
// (envoy-ext-proc.md §1–§12, checklist §17). Used by the integration tests and by `tiergate dev`'s local data
// plane. It applies Envoy's rules to the answers — raw_value only, append semantics, disallowed mutations
// ignored, content-length checked, spurious answers fail closed (≥1.35), message timeout → 504 — so a
// server bug shows up here as it would behind a real Envoy.
//
// envoy-filter.ts holds the filter settings, envoy-mutations.ts the mutation rules, envoy-answers.ts what an answer
// does to the request, ext-proc-session.ts one request's side stream and ext-proc-pool.ts the connection pool;
// this module is their one entry point.
export * from './envoy-filter.js';
export { applyHeaderMutation, getHeader, removeHeader, setHeader } from './envoy-mutations.js';
export { ExtProcPool } from './ext-proc-pool.js';
export { ExtProcSession } from './ext-proc-session.js';
