// How many new questions a second the local embedder (USE-lite in a worker thread) can take, and what it holds.
//
// The semantic cache embeds every new question of a tenant whose policy says semantic; past the model's rate,
// questions would queue (the embedder now refuses them past MAX_WAITING). This prints the time per question one at
// a time (the baseline) and with many waiting at once (batched, as under load), the rate that gives, and the
// process' memory once the model is loaded and after the run. Prints, asserts nothing.
//
//   npm run bench:embedder -- [questions, default 2000]
import { EmbedderBusyError } from '../src/cache/embedders/embedder.js';
import { LocalEmbedder, MAX_WAITING } from '../src/cache/embedders/local-embedder.js';

const total = Number(process.argv[2] ?? 2000);
const mb = (n: number) => (n / 2 ** 20).toFixed(0);
const question = (i: number) => `how do I configure widget number ${i} for the ${['north', 'south', 'east', 'west'][i % 4]} region of our deployment?`;

const start = process.memoryUsage().rss;
const embedder = new LocalEmbedder();
await embedder.whenReady();
const loaded = process.memoryUsage().rss;
for (let i = 0; i < 20; i++) await embedder.embed([question(-i - 1)]); // warm-up

let t = performance.now();
const single = Math.min(200, total);
for (let i = 0; i < single; i++) await embedder.embed([question(i)]);
const oneAtATime = (performance.now() - t) / single;

// As under load: the queue kept full (MAX_WAITING behind the running batch), refills as answers come back.
t = performance.now();
let done = 0;
let refused = 0;
await new Promise<void>((resolve) => {
  let next = 0;
  const send = (): void => {
    if (next >= total) return;
    const i = next++;
    embedder.embed([question(1_000_000 + i)]).then(
      () => (++done === total - refused ? resolve() : send()),
      (err: unknown) => {
        if (!(err instanceof EmbedderBusyError)) throw err;
        refused++;
        if (done === total - refused) resolve();
      },
    );
  };
  for (let k = 0; k < MAX_WAITING; k++) send();
});
const batched = (performance.now() - t) / done;
const after = process.memoryUsage().rss;
await embedder.close();

console.log(`node ${process.version}; local embedder (USE-lite), ${total} questions`);
console.log(`one at a time (baseline): ${oneAtATime.toFixed(2)} ms per question`);
console.log(`${MAX_WAITING} waiting at once:       ${batched.toFixed(2)} ms per question (${(oneAtATime / batched).toFixed(2)}x the baseline's rate): ~${Math.round(1000 / batched)} new questions/s; ${refused} refused`);
console.log(`RSS: ${mb(start)} MB before the model, ${mb(loaded)} MB loaded, ${mb(after)} MB after the run`);
