// Token counting with a real BPE tokenizer (gpt-tokenizer, o200k_base: the GPT-4o/GPT-5 vocabulary). Its
// tables take ~300 ms to load, so they load once, in the background, and counting is async: it only runs when a
// response carried no usage, off the answer path.
type Counter = (text: string) => number;

let loading: Promise<Counter> | undefined;

export function loadTokenizer(): Promise<Counter> {
  loading ??= import('gpt-tokenizer/encoding/o200k_base').then((m) => (text: string) => m.countTokens(text));
  return loading;
}

export async function countTokens(text: string): Promise<number> {
  if (text.length === 0) return 0;
  const count = await loadTokenizer();
  return count(text);
}
