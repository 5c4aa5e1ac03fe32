// A URL path segment as the client meant it: percent-decoded, or undefined when its escapes are malformed (a
// client error, never an exception).
export function decodedSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/**
 * A request path as a backend may read it: every percent-escape decoded (uvicorn, in front of vLLM, decodes them
 * all, %2F included), runs of slashes merged, `.` and `..` segments resolved, trailing slashes dropped.
 * Undefined when an escape is malformed.
 */
export function backendView(path: string): string | undefined {
  const decoded = decodedSegment(path);
  if (decoded === undefined) return undefined;
  const out: string[] = [];
  for (const seg of decoded.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return `/${out.join('/')}`;
}
