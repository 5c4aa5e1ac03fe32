// The JSON record a log line carries, wherever the line was kept: as the process wrote it; after a prefix (CRI
// log files' `<time> stdout F `, `kubectl logs --timestamps`, `docker compose logs`' `tiergate-1  | `); or
// wrapped whole in a Docker json-file entry, `{"log":"<the line>\n","stream":"stdout","time":"…"}`. That is
// Docker's default log driver (so docker compose's), and the shape fluentd and Fluent Bit forward, and there
// the record is an escaped string: read as the record itself it was a log entry without rows, passed over.
const DOCKER_ENTRY = '{"log":"';

/** The text of the record: from its first `{`, unwrapped from a Docker json-file entry; '' when there is none. */
export function recordText(line: string): string {
  const start = line.indexOf('{');
  if (start === -1) return '';
  if (!line.startsWith(DOCKER_ENTRY, start)) return line.slice(start);
  let log: unknown;
  try {
    log = (JSON.parse(line.slice(start)) as { log?: unknown }).log;
  } catch {
    return line.slice(start); // not a whole entry: judged as it is
  }
  if (typeof log !== 'string') return line.slice(start);
  const inner = log.replace(/\r?\n$/, '');
  const at = inner.indexOf('{');
  return at === -1 ? '' : inner.slice(at);
}
