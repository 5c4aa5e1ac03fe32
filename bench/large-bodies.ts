// How long a large request body holds the event loop: tiergate's request-body answer (parse, validate, classify,
// reserve, rewrite; through the real transport and protobuf, in memory, embedded defaults) against the least a
// gateway that rewrites `model` must do with the same bytes, a bare JSON.parse and JSON.stringify, in the same
// process. While one body is handled every other stream of the process waits, and Envoy's message_timeout runs
// for all of them (README "Bodies over 4 MiB"). Prints the median of 7 and the ratio; never asserts on time.
// Each shape runs twice: on the embedded defaults (no response cache) and with the response cache on in semantic
// mode, as `tiergate dev` has it, where the request is also keyed (exact key and semantic partition); each round's
// body differs in its seed there, so every lookup is a miss, the costlier path.
//   npm run bench:large-bodies
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { createApp } from '../src/app.js';
import { parseConfigText } from '../src/config/load.js';
import { compileRuntime } from '../src/config/runtime.js';
import { MemorySink } from '../src/ledger/memory-sink.js';
import { loadTokenizer } from '../src/llm/tokenizer.js';
import { createProcessHandler } from '../src/extproc/process-stream.js';
import { extProcServiceDefinition } from '../src/extproc/protos.js';
import { extProcServerDefinition } from '../src/extproc/response-encoder.js';
import { CONTINUE } from '../src/extproc/types.js';
import type { WireProcessingRequest } from '../src/extproc/wire.js';
import { HEADERS } from './extproc-driver.js';
import { median } from './stats.js';

const def = extProcServiceDefinition().Process as grpc.MethodDefinition<WireProcessingRequest, object>;
const serialize = (extProcServerDefinition().Process as grpc.MethodDefinition<WireProcessingRequest, object>).responseSerialize;
const raw = (h: ReadonlyArray<readonly [string, string]>) => h.map(([key, v]) => ({ key, raw_value: Buffer.from(v, 'latin1') }));

/** The parts of a grpc-js server call the transport uses; answers are serialised as grpc-js would. */
class MemoryCall extends EventEmitter {
  cancelled = false;
  destroyed = false;
  answers = 0;
  write(answer: object): boolean {
    serialize(answer);
    this.answers++;
    return true;
  }
  end(): void {}
}

await loadTokenizer();
/** The transport's handler over an app built from this config text (empty: the embedded defaults). */
function handlerFor(configText: string) {
  const loaded = parseConfigText(configText, {});
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  const rt = compileRuntime(loaded.config, {});
  if (!rt.ok) throw new Error('the config does not compile');
  const app = createApp(rt.runtime, pino({ level: 'silent' }), { ledgerSinks: [new MemorySink()] });
  return createProcessHandler(app.streamHandlers, {
    allowModeOverride: () => false,
    failureRule: () => 'reply',
    internalErrorReply: () => CONTINUE,
    hooks: { streamStarted() {}, streamEnded() {}, answered() {}, processingError: (_k, err) => console.error(err) },
  });
}
type Handle = ReturnType<typeof handlerFor>;
const configs: Array<[string, string]> = [
  ['embedded defaults (no cache)', ''],
  ['response cache on (semantic)', 'tenants: { "*": { cache: { mode: semantic } } }\n'],
];
const message = (m: object) => def.requestDeserialize(def.requestSerialize(m as WireProcessingRequest));
// The backend's answer, with usage, so that the stream ends as a normal request does (no estimate runs).
const responseMessages = [
  { response_headers: { headers: { headers: raw([[':status', '200'], ['content-type', 'application/json']]) } } },
  { response_body: { body: Buffer.from(JSON.stringify({ object: 'chat.completion', model: 'weak-model', choices: [], usage: { prompt_tokens: 9, completion_tokens: 1, total_tokens: 10 } })), end_of_stream: true } },
].map(message);
const headersMessage = def.requestDeserialize(
  def.requestSerialize({ request_headers: { headers: { headers: raw(HEADERS) } }, protocol_config: { request_body_mode: 'BUFFERED', response_body_mode: 'STREAMED' } } as WireProcessingRequest),
);

const MiB = 1024 * 1024;
const words = 'the quick brown fox jumps over the lazy dog while the function returns a value '.split(' ');
const prose = (chars: number) => {
  let s = '';
  for (let i = 0; s.length < chars; i++) s += `${words[i % words.length]} `;
  return s.slice(0, chars);
};
/** Bodies of about `bytes` in the shapes clients send. */
const shapes: Record<string, (bytes: number) => object> = {
  'one long message': (bytes) => ({ model: 'auto', messages: [{ role: 'user', content: prose(bytes - 100) }] }),
  'agent conversation': (bytes) => {
    // An agent's history: 200 turns of tool calls and tool results (file contents) of equal size.
    const per = Math.floor(bytes / 200) - 200;
    const messages: object[] = [{ role: 'system', content: 'You are a coding agent.' }];
    for (let i = 0; i < 100; i++) {
      messages.push({ role: 'assistant', content: null, tool_calls: [{ id: `call_${i}`, type: 'function', function: { name: 'read_file', arguments: `{"path":"src/f${i}.ts"}` } }] });
      messages.push({ role: 'tool', tool_call_id: `call_${i}`, content: prose(per * 2) });
    }
    return { model: 'auto', messages };
  },
  'image part (base64)': (bytes) => ({
    model: 'auto',
    messages: [{ role: 'user', content: [{ type: 'text', text: 'What is in this picture?' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${'iVBORw0KGgo'.repeat(Math.floor((bytes - 200) / 11))}` } }] }],
  }),
  'tiny messages': (bytes) => ({ model: 'auto', messages: Array.from({ length: Math.floor(bytes / 30) }, () => ({ role: 'user', content: 'a' })) }),
};

/** Milliseconds the request-body message holds the loop in tiergate, and until its answer is written. */
async function tiergateMs(handle: Handle, body: Buffer): Promise<{ held: number; answered: number }> {
  const call = new MemoryCall();
  handle(call as unknown as Parameters<typeof handle>[0]);
  call.emit('data', headersMessage);
  const message = def.requestDeserialize(def.requestSerialize({ request_body: { body, end_of_stream: true } } as WireProcessingRequest));
  const t0 = performance.now();
  call.emit('data', message);
  const held = performance.now() - t0;
  while (call.answers < 2) await new Promise((r) => setImmediate(r));
  const answered = performance.now() - t0;
  for (const m of responseMessages) call.emit('data', m);
  call.emit('end');
  await new Promise((r) => setTimeout(r, 30));
  return { held, answered };
}

function bareMs(body: Buffer): number {
  const t0 = performance.now();
  const json = JSON.parse(body.toString('utf8')) as { model: string };
  json.model = 'weak-model';
  Buffer.from(JSON.stringify(json));
  return performance.now() - t0;
}

console.log(`node ${process.version}; median of 7 per cell; a request-body message through tiergate's transport, in memory`);
for (const [configName, configText] of configs) {
  const handle = handlerFor(configText);
  const cached = configText !== '';
  console.log(`\n${configName}`);
  console.log('shape                 size     tiergate holds loop   answered   bare parse+stringify   ratio');
  for (const [name, make] of Object.entries(shapes)) {
    for (const mib of [1, 4, 16]) {
      const shape = make(mib * MiB - 1024);
      const held: number[] = [];
      const answered: number[] = [];
      const bare: number[] = [];
      for (let r = 0; r < 7; r++) {
        const body = Buffer.from(JSON.stringify(cached ? { ...shape, seed: r } : shape));
        const t = await tiergateMs(handle, body);
        held.push(t.held);
        answered.push(t.answered);
        bare.push(bareMs(body));
      }
      const h = median(held);
      const b = median(bare);
      console.log(
        `${name.padEnd(21)} ${`${mib} MiB`.padStart(6)} ${`${h.toFixed(0)} ms`.padStart(16)} ${`${median(answered).toFixed(0)} ms`.padStart(12)} ${`${b.toFixed(0)} ms`.padStart(18)} ${`${(h / b).toFixed(2)}×`.padStart(10)}`,
      );
    }
  }
}
process.exit(0);
