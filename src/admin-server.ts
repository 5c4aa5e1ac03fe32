// The admin HTTP listener: /healthz (process alive), /readyz (serving traffic), /metrics (Prometheus text).
import { createServer, type Server } from 'node:http';
import type { Metrics } from './telemetry/metrics.js';

export interface AdminServer {
  server: Server;
  listen(hostPort: string): Promise<number>;
  close(): Promise<void>;
}

export function createAdminServer(metrics: Metrics, ready: () => boolean): AdminServer {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ok = ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready\n' : 'not ready\n');
    } else if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  return {
    server,
    listen: (hostPort) => listenOn(server, hostPort),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export function splitHostPort(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, i).replace(/^\[|\]$/g, '');
  return { host, port: Number(hostPort.slice(i + 1)) };
}

export function listenOn(server: Server, hostPort: string): Promise<number> {
  const { host, port } = splitHostPort(hostPort);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : port);
    });
  });
}
