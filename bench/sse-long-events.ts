// What reading a streamed response costs per byte when its events are large (a Responses API
// `response.completed` holding a generated image, a tool call's arguments sent whole), against the same bytes
// as ordinary small events, in one process, printing ratios and never asserting on time. Envoy hands the body
// over in pieces of up to ~16 KiB, so a large event reaches the SSE parser as hundreds of pieces of one line.
// A ratio near 1 at every size means a large event costs what its bytes cost; it grew with the size while the
// parser joined the line's pieces again at every piece (a 16 MiB event took ~30 s of one core).
//   npm run bench:sse
import { ResponseUsageCollector } from '../src/usage/response-usage.js';
import { nsPerCall } from './stats.js';

const PIECE = 16 * 1024;
const cut = (b: Buffer) => Array.from({ length: Math.ceil(b.length / PIECE) }, (_, i) => b.subarray(i * PIECE, (i + 1) * PIECE));

/** One event of about `bytes`, JSON with one long string, as an image or a long argument list would be. */
function oneEvent(bytes: number): Buffer {
  return Buffer.from(`event: response.completed\ndata: ${JSON.stringify({ type: 'response.completed', response: { output: [{ result: 'A'.repeat(bytes) }] } })}\n\n`);
}

/** About `bytes` of ordinary chat chunks (~170 bytes each). */
function smallEvents(bytes: number): Buffer {
  const ev = `data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: { content: 'word ' } }] })}\n\n`;
  return Buffer.from(ev.repeat(Math.ceil(bytes / ev.length)));
}

function nsPerByte(body: Buffer): number {
  const pieces = cut(body);
  const calls = Math.max(1, Math.round(32 * 1024 * 1024 / body.length));
  const ns = nsPerCall(() => {
    const c = new ResponseUsageCollector('sse');
    for (const p of pieces) c.push(p);
    c.finish();
  }, calls);
  return ns / body.length;
}

console.log(`node ${process.version}; median of 7 rounds; pieces of ${PIECE} bytes`);
for (const mib of [1, 4, 16]) {
  const bytes = mib * 1024 * 1024;
  const large = nsPerByte(oneEvent(bytes));
  const small = nsPerByte(smallEvents(bytes));
  console.log(`  ${mib} MiB: one event ${large.toFixed(2)} ns/byte, small events ${small.toFixed(2)} ns/byte; one event / small events ${(large / small).toFixed(2)}×`);
}
