/**
 * Where the Go-built test binaries are (test/envtest/build-tools.sh puts them in .tools/), and
 * whether the operator suite runs at all: it fails when they are missing, unless
 * HUB_BROKER_SKIP_ENVTEST=1 asks to skip it.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const toolsDir = process.env.HUB_BROKER_TOOLS_DIR ?? join(repoRoot, '.tools');

export interface Binaries {
  readonly kubeApiserver: string;
  readonly etcd: string;
  readonly helm: string;
  /** Runs Argo CD health checks (Lua) the way Argo CD does; built by build-tools.sh. */
  readonly argocdLua: string;
}

export const binaries: Binaries = {
  kubeApiserver: process.env.HUB_BROKER_KUBE_APISERVER ?? join(toolsDir, 'kube-apiserver'),
  etcd: process.env.HUB_BROKER_ETCD ?? join(toolsDir, 'etcd'),
  helm: process.env.HUB_BROKER_HELM ?? join(toolsDir, 'helm'),
  argocdLua: process.env.HUB_BROKER_ARGOCD_LUA ?? join(toolsDir, 'argocd-lua'),
};

/** True when HUB_BROKER_SKIP_ENVTEST=1: suites that need the binaries are skipped. */
export const skipEnvtest = process.env.HUB_BROKER_SKIP_ENVTEST === '1';

/** Throws the one message a developer needs when a binary is missing. */
export function requireBinary(name: keyof Binaries): string {
  const path = binaries[name];
  if (!existsSync(path)) {
    throw new Error(
      `${path} is missing: run \`bash test/envtest/build-tools.sh\` to build the test binaries ` +
        `(or set HUB_BROKER_SKIP_ENVTEST=1 to skip the tests that need them)`,
    );
  }
  return path;
}
