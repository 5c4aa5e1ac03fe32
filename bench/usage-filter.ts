// What taking the forced usage chunk out of a stream costs per chunk (src/usage/forced-usage-filter.ts), in one
// process, printing ratios and never asserting on time. The baseline is the usage collector's work on the same
// chunks, which every streamed chunk of an LLM request pays anyway (the SSE parser, a JSON.parse per event):
// - the bench's chunks (one OpenAI-shaped event each, `"usage":null` in every one, as with include_usage), where
//   the filter only finds the event boundary and answers "unchanged";
// - a recorded OpenAI stream cut every 100 bytes, so most chunks end mid-event and are replaced (the part
//   held back goes with the next one), and the usage event is taken out.
//   npm run bench:usage-filter
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHUNK, LAST_CHUNK } from './extproc-driver.js';
import { ForcedUsageFilter } from '../src/usage/forced-usage-filter.js';
import { ResponseUsageCollector } from '../src/usage/response-usage.js';
import { nsPerCall } from './stats.js';

const FIXTURE = join(import.meta.dirname, '../../shared/data/openai-transcripts/extracted/chat-streaming-detailed-usage.response.sse');
const us = (n: number) => `${(n / 1000).toFixed(2)} us`;

/** One stream's chunks through a fresh filter or collector; the last chunk ends the body. */
function through(chunks: readonly Buffer[], make: () => { push(c: Buffer, last: boolean): unknown }): () => void {
  return () => {
    const f = make();
    for (let i = 0; i < chunks.length; i++) f.push(chunks[i] as Buffer, i === chunks.length - 1);
  };
}

const recorded = readFileSync(FIXTURE);
const cutEvery = (b: Buffer, n: number) => Array.from({ length: Math.ceil(b.length / n) }, (_, i) => b.subarray(i * n, (i + 1) * n));
const cases: Array<[string, Buffer[]]> = [
  ['bench stream: 100 event-aligned chunks and the usage chunk', [...Array.from({ length: 100 }, () => CHUNK), LAST_CHUNK]],
  [`recorded OpenAI stream (${recorded.length} bytes) cut every 100 bytes`, cutEvery(recorded, 100)],
];

console.log(`node ${process.version}; median of 7 rounds; per chunk`);
for (const [name, chunks] of cases) {
  const calls = Math.round(200_000 / chunks.length);
  const filter = nsPerCall(through(chunks, () => new ForcedUsageFilter()), calls) / chunks.length;
  const collector = nsPerCall(through(chunks, () => new ResponseUsageCollector('sse')), calls) / chunks.length;
  console.log(`  ${name}: filter ${us(filter)}, usage collector ${us(collector)}; the filter adds ${((100 * filter) / collector).toFixed(0)}% to what a chunk's accounting costs`);
}
