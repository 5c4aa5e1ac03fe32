// A number as a person writes it in decimal, for text that is meant as one: a command-line value, or an
// environment variable put where the config wants a number. Number() alone also reads "0x10" as 16, "1e1" as 10
// and "" as 0.
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)$/;

/** The number `text` writes in decimal notation (surrounding spaces allowed), or undefined. */
export function parseDecimal(text: string): number | undefined {
  const t = text.trim();
  return DECIMAL.test(t) ? Number(t) : undefined;
}
