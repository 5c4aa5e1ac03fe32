// Envoy's connection pool to the ext_proc cluster, as far as the side streams care.
import * as grpc from '@grpc/grpc-js';
import { extProcClientConstructor } from '../extproc/protos.js';
import type { WireProcessingRequest, WireProcessingResponse } from '../extproc/wire.js';
import { RECOMMENDED_FILTER, type Counters, type FilterConfig } from './envoy-filter.js';
import { ExtProcSession } from './ext-proc-session.js';

type ProcessClient = grpc.Client & { Process?: (md: grpc.Metadata) => grpc.ClientDuplexStream<WireProcessingRequest, WireProcessingResponse> };

/**
 * Envoy's connection pool to the ext_proc cluster. `maxStreamsPerConnection` is the cluster's
 * `max_requests_per_connection`: after that many streams a connection is drained and a new one opened,
 * which keeps each server session under nghttp2's reset-rate guard (README "Envoy's stream-close pattern").
 */
export class ExtProcPool {
  private client: ProcessClient;
  private used = 0;
  private readonly Ctor = extProcClientConstructor();
  readonly counters: Counters = { spurious: 0, rejectedMutations: 0, timeouts: 0, ignoredAnswers: 0 };
  private readonly retired: grpc.Client[] = [];

  constructor(
    private readonly target: string,
    private readonly maxStreamsPerConnection = 0,
    /** The cluster's transport socket: plaintext, or TLS (with Envoy's client certificate for mutual TLS). */
    private readonly credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  ) {
    this.client = this.newClient();
  }

  private newClient() {
    // A local subchannel pool gives each client its own HTTP/2 connection, as Envoy's pool rotation does.
    return new this.Ctor(this.target, this.credentials, {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
    }) as ProcessClient;
  }

  /**
   * `metadata`: the side stream's gRPC initial metadata. Envoy puts its ext_proc client span's trace context there
   * when it traces (`traceparent`, or its tracer's own headers), and the filter's `initial_metadata` entries.
   */
  open(filter: FilterConfig = RECOMMENDED_FILTER, metadata: ReadonlyArray<readonly [string, string]> = []): ExtProcSession {
    if (this.maxStreamsPerConnection > 0 && this.used >= this.maxStreamsPerConnection) {
      const old = this.client;
      this.retired.push(old);
      // Drain: streams already on the old connection finish; it closes once they have.
      setTimeout(() => old.close(), 30_000).unref();
      this.client = this.newClient();
      this.used = 0;
    }
    this.used++;
    const process = this.client.Process?.bind(this.client);
    if (!process) throw new Error('ExternalProcessor client has no Process method');
    const md = new grpc.Metadata();
    for (const [k, v] of metadata) md.add(k, v);
    return new ExtProcSession(process(md), filter, this.counters);
  }

  close(): void {
    this.client.close();
    for (const c of this.retired) c.close();
  }
}
