// A URL path segment as the client meant it: percent-decoded, or undefined when its escapes are malformed (a
// client error, never an exception).
export function decodedSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}
