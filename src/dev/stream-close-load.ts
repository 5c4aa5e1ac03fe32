// Drives an ext_proc server with Envoy's end-of-stream pattern at a fixed rate: every stream does a full
// four-phase LLM exchange and then closes the way Envoy does — half-close followed at once by a reset
// (envoy-ext-proc.md §2.6). Used by test/integration/stream-close.test.ts and bench/stream-close-load.ts.
import { ExtProcPool, RECOMMENDED_FILTER, chatRequestHeaders, type Outcome } from './envoy-client.js';

export interface LoadOptions {
  target: string;
  streams: number;
  ratePerSecond: number;
  /** Envoy's max_requests_per_connection for the ext_proc cluster; 0 = unlimited (Envoy's default). */
  maxStreamsPerConnection: number;
}

export interface LoadResult {
  streams: number;
  ok: number;
  failed: number;
  /** Failure details → count. */
  errors: Record<string, number>;
  seconds: number;
  achievedRate: number;
}

const HEADERS = chatRequestHeaders();
const BODY = Buffer.from(JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'Say hi' }] }));

export async function runStreamCloseLoad(o: LoadOptions): Promise<LoadResult> {
  const pool = new ExtProcPool(o.target, o.maxStreamsPerConnection);
  const errors: Record<string, number> = {};
  let ok = 0;
  let failed = 0;
  const fail = (why: string) => {
    failed++;
    errors[why] = (errors[why] ?? 0) + 1;
  };
  const one = async () => {
    const s = pool.open({ ...RECOMMENDED_FILTER, messageTimeoutMs: 5000 });
    const steps: Array<() => Promise<Outcome>> = [
      () => s.sendRequestHeaders(HEADERS, false),
      () => s.sendRequestBody(BODY, true),
      () => s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false),
      () => s.sendResponseBody(Buffer.from('{"choices":[]}'), true),
    ];
    for (const step of steps) {
      const out = await step();
      if (out.kind !== 'continue') {
        fail(out.kind === 'error' ? out.details : out.kind);
        s.close();
        return;
      }
    }
    s.close();
    ok++;
  };
  const started = Date.now();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < o.streams; i++) {
    const due = started + (i * 1000) / o.ratePerSecond;
    const wait = due - Date.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    inflight.push(one().catch((e: Error) => fail(e.message)));
  }
  await Promise.all(inflight);
  const seconds = (Date.now() - started) / 1000;
  pool.close();
  return { streams: o.streams, ok, failed, errors, seconds, achievedRate: o.streams / seconds };
}
