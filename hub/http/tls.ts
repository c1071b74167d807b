/** Certificate and key for https/wss, reloaded when either file changes (e.g. cert-manager renewal). */
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import type { Logger } from '../logger.js';

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

export function readTls(files: TlsFiles): { cert: Buffer; key: Buffer } {
  return { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) };
}

/**
 * Polls both files (polling survives the symlink swaps Kubernetes does for mounted Secrets)
 * and installs a new secure context when they change. Returns a function that stops watching.
 */
export function watchTls(server: HttpsServer, files: TlsFiles, logger: Logger, intervalMs = 2000): () => void {
  const reload = () => {
    try {
      server.setSecureContext(readTls(files));
      logger.info({ certFile: files.certFile }, 'TLS certificate reloaded');
    } catch (err) {
      // A half-written pair (cert updated, key not yet): keep serving the old one and retry on the next change.
      logger.warn({ err: (err as Error).message }, 'TLS certificate reload failed; keeping the previous one');
    }
  };
  watchFile(files.certFile, { interval: intervalMs, persistent: false }, reload);
  watchFile(files.keyFile, { interval: intervalMs, persistent: false }, reload);
  return () => {
    unwatchFile(files.certFile, reload);
    unwatchFile(files.keyFile, reload);
  };
}
