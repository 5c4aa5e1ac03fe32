// HOST:PORT, as `server.listen`, `server.admin`, `--listen` and `--admin` take it: a name or IPv4 address, or an
// IPv6 address in brackets, and a port from 0 (any free one) to 65535. One check for the config and the command
// line alike: a port past 65535 passed the config's pattern and failed only when the server bound it.
const HOST_PORT = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/;

export const HOST_PORT_EXPECTED = 'HOST:PORT, with a port from 0 to 65535';

export function isHostPort(s: string): boolean {
  const m = HOST_PORT.exec(s);
  return m !== null && Number(m[2]) <= 65_535;
}

export function splitHostPort(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, i).replace(/^\[|\]$/g, '');
  return { host, port: Number(hostPort.slice(i + 1)) };
}
