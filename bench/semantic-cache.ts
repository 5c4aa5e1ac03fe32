// Semantic cache precision on labelled paraphrase pairs (../shared/data/paraphrase-dev): for each pair, store the
// first sentence's answer, ask with the second, and count a hit when the similarity reaches the threshold and the
// guards agree. A pair is a true duplicate when its STS score is ≥ 4.5, or its label says paraphrase / same
// question. Prints per dataset the precision (share of hits that are true duplicates) and recall at the
// configured threshold, and the curve over thresholds, with and without guards.
//   npm run bench:semantic [-- --embedder local|openai --url URL --model NAME --threshold 0.93]
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { dot, type Embedder } from '../src/cache/embedders/embedder.js';
import { LocalEmbedder } from '../src/cache/embedders/local-embedder.js';
import { OpenAiEmbedder } from '../src/cache/embedders/openai-embedder.js';
import { guardMismatch, questionFeatures } from '../src/cache/guards.js';
import { embeddingText } from '../src/cache/request-key.js';
import { DEFAULT_SEMANTIC_THRESHOLD } from '../src/config/cache-schema.js';
import { SHARED_DATA } from '../test/helpers/shared-data.js';

const { values } = parseArgs({
  options: {
    embedder: { type: 'string', default: 'local' },
    url: { type: 'string' },
    model: { type: 'string' },
    threshold: { type: 'string', default: String(DEFAULT_SEMANTIC_THRESHOLD) },
    json: { type: 'boolean', default: false },
  },
});
const threshold = Number(values.threshold);

interface Pair {
  a: string;
  b: string;
  dup: boolean;
}

const dir = join(SHARED_DATA, 'paraphrase-dev');
const lines = (f: string) => readFileSync(join(dir, f), 'utf8').replace(/^\uFEFF/, '').split('\n').filter((l) => l.trim() !== '');
const tsv = (f: string, header: boolean) => (header ? lines(f).slice(1) : lines(f)).map((l) => l.split('\t'));

const DATASETS: Record<string, () => Pair[]> = {
  // genre file year id score s1 s2 (a few lines carry extra columns after s2)
  'stsbenchmark-en': () => ['sts-train.csv', 'sts-dev.csv'].flatMap((f) => tsv(`stsbenchmark-en/${f}`, false).filter((c) => c.length >= 7).map((c) => ({ a: c[5] as string, b: c[6] as string, dup: Number(c[4]) >= 4.5 }))),
  mrpc: () => ['msr-para-train.tsv', 'msr-para-val.tsv'].flatMap((f) => tsv(`mrpc/${f}`, true).filter((c) => c.length >= 5).map((c) => ({ a: c[3] as string, b: c[4] as string, dup: c[0] === '1' }))),
  korsts: () => ['sts-train.tsv', 'sts-dev.tsv'].flatMap((f) => tsv(`korsts/${f}`, true).filter((c) => c.length >= 7).map((c) => ({ a: c[5] as string, b: c[6] as string, dup: Number(c[4]) >= 4.5 }))),
  // Inverted label: 0 = same question.
  'kor-question-pair': () => ['train.txt', 'validation.txt'].flatMap((f) => tsv(`kor-question-pair/${f}`, true).filter((c) => c.length >= 3).map((c) => ({ a: c[0] as string, b: c[1] as string, dup: c[2]?.trim() === '0' }))),
};

function makeEmbedder(): Embedder {
  if (values.embedder === 'openai') {
    if (!values.url || !values.model) throw new Error('--embedder openai needs --url and --model');
    return new OpenAiEmbedder({ url: values.url, model: values.model, apiKey: process.env.EMBEDDINGS_API_KEY, timeoutMs: 60_000, maxConcurrency: 32 });
  }
  return new LocalEmbedder();
}

/** Vectors are cached on disk per embedder and sentence set, so re-running with another threshold is quick. */
async function embedAll(embedder: Embedder, name: string, sentences: string[]): Promise<Map<string, Float32Array>> {
  const cacheDir = join(tmpdir(), 'tiergate-semantic-bench');
  mkdirSync(cacheDir, { recursive: true });
  const file = join(cacheDir, `${createHash('sha256').update(embedder.id).update('normalised-v1').update(name).update(sentences.join('\n')).digest('hex').slice(0, 16)}.bin`);
  const out = new Map<string, Float32Array>();
  if (existsSync(file)) {
    const buf = readFileSync(file);
    const dims = buf.readUInt32LE(0);
    sentences.forEach((s, i) => out.set(s, new Float32Array(buf.buffer.slice(buf.byteOffset + 4 + i * dims * 4, buf.byteOffset + 4 + (i + 1) * dims * 4))));
    return out;
  }
  const vectors: Float32Array[] = [];
  // Embedded exactly as the gateway embeds a question.
  for (let i = 0; i < sentences.length; i += 256) vectors.push(...(await embedder.embed(sentences.slice(i, i + 256).map(embeddingText))));
  const dims = vectors[0]?.length ?? 0;
  const buf = Buffer.alloc(4 + vectors.length * dims * 4);
  buf.writeUInt32LE(dims, 0);
  vectors.forEach((v, i) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).copy(buf, 4 + i * dims * 4));
  writeFileSync(file, buf);
  sentences.forEach((s, i) => out.set(s, vectors[i] as Float32Array));
  return out;
}

interface Scored {
  sim: number;
  /** Every guard agrees, the lexical one included (the default). */
  guarded: boolean;
  /** Every guard but the lexical one agrees. */
  guardedLoose: boolean;
  dup: boolean;
}

function at(scored: Scored[], t: number, guards: 'all' | 'loose' | 'none') {
  let hits = 0;
  let trueHits = 0;
  const dups = scored.filter((s) => s.dup).length;
  for (const s of scored) {
    if (s.sim < t || (guards === 'all' && !s.guarded) || (guards === 'loose' && !s.guardedLoose)) continue;
    hits++;
    if (s.dup) trueHits++;
  }
  return { hits, precision: hits > 0 ? trueHits / hits : null, recall: dups > 0 ? trueHits / dups : null };
}

const embedder = makeEmbedder();
const report: Record<string, unknown> = { embedder: embedder.id, threshold };
const fmt = (x: number | null) => (x === null ? '  -  ' : x.toFixed(3));
console.log(`semantic cache precision — embedder ${embedder.id}, threshold ${threshold}, guards: numbers, code, URLs, quotes, entities, negation, content words`);
for (const [name, load] of Object.entries(DATASETS)) {
  const pairs = load();
  const sentences = [...new Set(pairs.flatMap((p) => [p.a, p.b]))];
  const t0 = performance.now();
  const vec = await embedAll(embedder, name, sentences);
  const embedS = (performance.now() - t0) / 1000;
  const scored: Scored[] = pairs.map((p) => {
    const fa = questionFeatures(p.a);
    const fb = questionFeatures(p.b);
    return { sim: dot(vec.get(p.a) as Float32Array, vec.get(p.b) as Float32Array), guarded: guardMismatch(fa, fb) === undefined, guardedLoose: guardMismatch(fa, fb, false) === undefined, dup: p.dup };
  });
  const dups = scored.filter((s) => s.dup).length;
  const main = at(scored, threshold, 'all');
  console.log(`\n${name}: ${pairs.length} pairs, ${dups} true duplicates (embedded in ${embedS.toFixed(1)} s)`);
  console.log(`  at ${threshold}: precision ${fmt(main.precision)}  recall ${fmt(main.recall)}  (${main.hits} hits)`);
  console.log('  threshold | all guards: precision recall  hits | without lexical: precision recall | no guards: precision recall');
  const curve = [];
  for (let t = 0.7; t <= 0.995; t += 0.02) {
    const g = at(scored, t, 'all');
    const l = at(scored, t, 'loose');
    const n = at(scored, t, 'none');
    curve.push({ threshold: Number(t.toFixed(2)), guards: g, withoutLexical: l, noGuards: n });
    console.log(`  ${t.toFixed(2)}      |             ${fmt(g.precision)}   ${fmt(g.recall)} ${String(g.hits).padStart(5)} |                  ${fmt(l.precision)}  ${fmt(l.recall)} |            ${fmt(n.precision)}  ${fmt(n.recall)}`);
  }
  report[name] = { pairs: pairs.length, duplicates: dups, atThreshold: main, curve };
}
if (values.json) console.log(JSON.stringify(report));
await embedder.close();
