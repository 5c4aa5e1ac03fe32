// What the shipped Envoy does to a request's :path before any filter sees it (envoy/envoy.yaml: `normalize_path`
// and `merge_slashes` on the connection manager; Envoy applies them in that order, and the upstream gets the
// result too). Normalisation is RFC 3986's, as Envoy's API describes it: escapes of unreserved characters decoded
// (§6.2.2.2) and dot segments removed (§6.2.2.3, by the algorithm of §5.2.4); no case normalisation, and other
// escapes (%2F among them) left as they are. The query is not touched. tiergate refuses what is still disguised
// after this (README "Public contract"), as it would behind Envoy.

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

export function envoyNormalizedPath(path: string): string {
  const q = path.indexOf('?');
  const bare = q < 0 ? path : path.slice(0, q);
  const query = q < 0 ? '' : path.slice(q);
  const decoded = bare.replace(/%([0-9A-Fa-f]{2})/g, (escape, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(c) ? c : escape;
  });
  return removeDotSegments(decoded).replace(/\/{2,}/g, '/') + query;
}

/** RFC 3986 §5.2.4, step by step. */
function removeDotSegments(path: string): string {
  let input = path;
  let output = '';
  const dropLastSegment = () => {
    output = output.slice(0, Math.max(0, output.lastIndexOf('/')));
  };
  while (input.length > 0) {
    if (input.startsWith('../')) input = input.slice(3);
    else if (input.startsWith('./') || input.startsWith('/./')) input = input.slice(2);
    else if (input === '/.') input = '/';
    else if (input.startsWith('/../')) {
      input = input.slice(3);
      dropLastSegment();
    } else if (input === '/..') {
      input = '/';
      dropLastSegment();
    } else if (input === '.' || input === '..') input = '';
    else {
      const end = input.indexOf('/', 1);
      const segment = end < 0 ? input : input.slice(0, end);
      output += segment;
      input = input.slice(segment.length);
    }
  }
  return output;
}
