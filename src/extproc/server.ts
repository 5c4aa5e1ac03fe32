// The gRPC server: ExternalProcessor/Process plus grpc.health.v1 on the same port.
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { extProcServerDefinition } from './response-encoder.js';
import { createProcessHandler, type TransportOptions } from './process-stream.js';
import { serverCredentials, type ListenerTls } from './listener-tls.js';
import type { StreamHandlerFactory } from './types.js';

export interface ExtProcServerOptions extends TransportOptions {
  /**
   * Raise Node's HTTP/2 limit on incoming RST_STREAM frames. Envoy ends every side stream with a half-close
   * followed at once by a reset (envoy-ext-proc.md §2.6), so a busy Envoy sends one reset per request; nghttp2's
   * rapid-reset guard (burst 1000, refill 33/s per connection) then answers with GOAWAY(INTERNAL_ERROR) and
   * streams in flight on that connection fail. Node ≥ 22.10 lets a server raise it; Node 20 has the guard but
   * not the option, so there the fix is Envoy's `max_requests_per_connection` on the ext_proc cluster (below the
   * burst). Measured in bench/stream-close-load.ts; README "Envoy's stream-close pattern".
   */
  streamResetBurst?: number;
  streamResetRate?: number;
}

/** Streams a shutdown ended at its grace period's end: handed back to Envoy with OK, or cut (ProcessHandler.endAll). */
export interface StreamsEnded {
  detached: number;
  cut: number;
}

/**
 * How long the statuses of the streams ended at a grace period's end get to reach Envoy before the server is
 * forced down (which resets whatever is still open: a detached stream's OK lost that way would fail its request).
 * Envoy closes its side as soon as a status arrives, so this is a bound, seldom waited out. Part of what a
 * shutdown may take: the shipped stop grace periods are checked against it.
 */
export const END_FLUSH_MS = 500;

/** Server-wide health name plus the service name, so probes of either see the same status. */
export const HEALTH_SERVICES = ['', 'envoy.service.ext_proc.v3.ExternalProcessor'] as const;

export interface ExtProcServer {
  server: grpc.Server;
  health: HealthImplementation;
  /** Resolves to the bound port; with `tls`, the listener takes TLS only (listener-tls.ts). */
  listen(hostPort: string, tls?: ListenerTls): Promise<number>;
  setServing(serving: boolean): void;
  /**
   * Stop accepting new streams; resolves when in-flight ones are done, or once `graceMs` passed and the streams
   * still open were ended (ProcessHandler.endAll), with how many of those were detached and how many cut.
   */
  shutdown(graceMs: number): Promise<StreamsEnded>;
}

export function createExtProcServer(factory: StreamHandlerFactory, opts: ExtProcServerOptions): ExtProcServer {
  const server = new grpc.Server({
    // Envoy sends BUFFERED bodies in one message; grpc-js' 4 MiB default would fail larger ones with
    // RESOURCE_EXHAUSTED → Envoy 500 (§16). Body size is limited by config instead (413).
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
    // tiergate does not serve grpc-js' channelz service, so nobody can read what channelz records; with it on,
    // grpc-js keeps per-call trackers and timestamps for every message of every stream all the same.
    'grpc.enable_channelz': 0,
  });
  applyHttp2ResetLimits(server, opts.streamResetBurst, opts.streamResetRate);
  const processHandler = createProcessHandler(factory, opts);
  server.addService(extProcServerDefinition(), { Process: processHandler });
  const health = new HealthImplementation(Object.fromEntries(HEALTH_SERVICES.map((s) => [s, 'NOT_SERVING'])));
  health.addToServer(server);

  return {
    server,
    health,
    listen: async (hostPort, tls) => {
      const credentials = await serverCredentials(tls);
      return new Promise<number>((resolve, reject) => {
        server.bindAsync(hostPort, credentials, (err, port) => (err ? reject(bindError(err)) : resolve(port)));
      });
    },
    setServing: (serving) => {
      for (const s of HEALTH_SERVICES) health.setStatus(s, serving ? 'SERVING' : 'NOT_SERVING');
    },
    shutdown: (graceMs) =>
      new Promise((resolve) => {
        let ended: StreamsEnded = { detached: 0, cut: 0 };
        let forceTimer: NodeJS.Timeout | undefined;
        const done = () => {
          clearTimeout(timer);
          clearTimeout(forceTimer);
          resolve(ended);
        };
        const timer = setTimeout(() => {
          // Every stream still open ends now, each with the status that suits it (ProcessHandler.endAll), and its
          // request's ledger row is recorded before the ledger closes. Those ended with OK are handed back to
          // Envoy: a long answer goes on to its client instead of being cut at the grace period.
          ended = processHandler.endAll();
          // The statuses need to reach Envoy before the connections go: tryShutdown's callback comes once Envoy
          // has closed those streams; past END_FLUSH_MS the server is forced down all the same.
          forceTimer = setTimeout(() => {
            server.forceShutdown();
            processHandler.cancelAll();
            done();
          }, END_FLUSH_MS);
          forceTimer.unref();
        }, graceMs);
        timer.unref();
        server.tryShutdown(done);
      }),
  };
}

/**
 * grpc-js has no channel option for Node's http2 `streamResetBurst`/`streamResetRate`, but it passes its
 * `commonServerOptions` object to http2.createServer for every port it binds, so we add the two keys there.
 * Node versions without the option ignore unknown keys. Returns whether the keys could be placed.
 */
function applyHttp2ResetLimits(server: grpc.Server, burst: number | undefined, rate: number | undefined): boolean {
  if (burst === undefined || rate === undefined) return false;
  const holder = server as unknown as { commonServerOptions?: Record<string, unknown> };
  if (!holder.commonServerOptions || typeof holder.commonServerOptions !== 'object') return false;
  holder.commonServerOptions.streamResetBurst = burst;
  holder.commonServerOptions.streamResetRate = rate;
  return true;
}

/**
 * What stopped the bind, as the admin listener's own error says it ("listen EADDRINUSE: address already in use
 * 127.0.0.1:9002"): grpc-js wraps it in "No address added out of total 1 resolved errors: […]". Its wording is
 * grpc-js's, so anything else it says is passed on as it is.
 */
export function bindError(err: Error): Error {
  const inner = /^No address added out of total \d+ resolved errors: \[(.+)\]$/s.exec(err.message)?.[1];
  return inner === undefined ? err : Object.assign(new Error(inner), { cause: err });
}
