// TLS on the ext_proc listener, optionally mutual. The side stream carries every prompt, every answer and the
// clients' gateway keys, so between Envoy's pods and tiergate's it should not travel in the clear unless a mesh
// already encrypts it. The files are read again every `refreshSeconds` (grpc-js' file-watcher certificate
// provider), so a certificate cert-manager renews in its Secret is served without a restart; they are read once
// at start as well, so that a missing file, a key that does not match its certificate or a malformed CA stops the
// start with a clear message instead of failing every handshake.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import * as grpc from '@grpc/grpc-js';

export interface ListenerTls {
  certFile: string;
  keyFile: string;
  /** Envoy must then present a certificate this CA signed (mutual TLS). */
  clientCaFile?: string | undefined;
  refreshSeconds: number;
}

/** Resolves once the files are loaded: the listener then takes no connection it could not complete. */
export async function serverCredentials(tls: ListenerTls | undefined): Promise<grpc.ServerCredentials> {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure();
  checkFiles(tls);
  const files = new grpc.experimental.FileWatcherCertificateProvider({
    certificateFile: tls.certFile,
    privateKeyFile: tls.keyFile,
    caCertificateFile: tls.clientCaFile,
    refreshIntervalMs: tls.refreshSeconds * 1000,
  });
  // The provider reads its files when its first listener comes, and the credentials have no certificate until it
  // has: bound at once, the listener closed the connections of its first milliseconds (a test saw it). Read first,
  // the credentials get the certificate before the listener can accept anything.
  await firstRead(files);
  const mutual = tls.clientCaFile !== undefined;
  // grpc-js names these parameters (ca, identity, require) but passes them on as (identity, ca, require) to the
  // credentials it builds, whose code reads them that way: the identity provider goes first.
  return grpc.experimental.createCertificateProviderServerCredentials(files, mutual ? files : null, mutual);
}

function firstRead(files: grpc.experimental.FileWatcherCertificateProvider): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      files.removeIdentityCertificateListener(loaded);
      reject(new Error('server.tls: the certificate files were not loaded within 5 s'));
    }, 5000);
    function loaded(update: unknown): void {
      if (update === null) return;
      clearTimeout(timer);
      // The last listener gone, the provider stops its timer; the listener's own starts it again, without
      // reading the files again so soon.
      files.removeIdentityCertificateListener(loaded);
      resolve();
    }
    files.addIdentityCertificateListener(loaded);
  });
}

function checkFiles(tls: ListenerTls): void {
  const read = (what: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`server.tls.${what}: cannot read ${path}: ${(err as Error).message}`);
    }
  };
  const cert = read('certFile', tls.certFile);
  const key = read('keyFile', tls.keyFile);
  const ca = tls.clientCaFile === undefined ? undefined : read('clientCaFile', tls.clientCaFile);
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new Error(`server.tls: the certificate and key cannot be used together: ${(err as Error).message}`);
  }
  // A CA file that holds no certificate (a key, say) is taken by Node's TLS without complaint, and then every
  // client certificate is refused.
  if (ca !== undefined) {
    try {
      new X509Certificate(ca);
    } catch (err) {
      throw new Error(`server.tls.clientCaFile: ${tls.clientCaFile} holds no certificate: ${(err as Error).message}`);
    }
  }
}
