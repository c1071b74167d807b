/**
 * A real etcd + kube-apiserver for tests, envtest style: loopback only, random free ports, one
 * temp dir, token authentication (an admin in system:masters) and RBAC. Service-account tokens
 * work through the TokenRequest API, so a test can act as the operator's service account and
 * exercise the chart's RBAC for real. Optionally writes an audit log of every request.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll } from 'vitest';
import YAML from 'yaml';
import { KubeClient } from '../../operator/kube/client.js';
import { Api, NAMESPACES, type KubeObject, type ResourceType } from '../../operator/kube/resources.js';
import { repoRoot, requireBinary } from './binaries.js';
import { freePort } from '../support/net.js';

export const CRDS: ResourceType = {
  group: 'apiextensions.k8s.io',
  version: 'v1',
  plural: 'customresourcedefinitions',
  kind: 'CustomResourceDefinition',
  namespaced: false,
};

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  readonly url: string;
  readonly adminToken: string;
  readonly dir: string;
  /** Set when started with `audit: true`: one JSON audit event per line. */
  readonly auditLogPath: string | undefined;
  /** A KubeConfig for `token` (default: the admin). */
  kubeConfig(token?: string): KubeConfig;
  /** An API client as the admin. */
  readonly admin: Api;
  /** A fresh namespace with a random name starting with `prefix`. */
  createNamespace(prefix?: string): Promise<string>;
  /** Last lines of the API server's log, for failure messages. */
  logTail(lines?: number): string;
  /** Stops kube-apiserver (etcd keeps the data) and starts it again on the same port. */
  restartApiServer(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface ControlPlaneOptions {
  /** Record every request in an audit log (RBAC tests read it). */
  readonly audit?: boolean;
}


const live = new Set<ChildProcess>();
// A worker that dies must not leave servers behind.
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

function start(bin: string, args: string[], logPath: string): ChildProcess {
  const fd = openSync(logPath, 'a');
  const child = spawn(bin, args, { stdio: ['ignore', fd, fd] });
  live.add(child);
  child.on('exit', () => live.delete(child));
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
`;

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const kasBin = requireBinary('kubeApiserver');
  const etcdBin = requireBinary('etcd');
  const dir = mkdtempSync(join(tmpdir(), 'hub-broker-envtest-'));
  const adminToken = randomBytes(24).toString('hex');
  writeFileSync(join(dir, 'tokens.csv'), `${adminToken},admin,admin-uid,"system:masters"\n`);
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs1', format: 'pem' }));
  writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  const auditLogPath = options.audit ? join(dir, 'audit.log') : undefined;
  if (auditLogPath) writeFileSync(join(dir, 'audit-policy.yaml'), AUDIT_POLICY);

  const [ep, pp, ap] = [await freePort(), await freePort(), await freePort()];
  const etcd = start(
    etcdBin,
    [
      '--name=default',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${ep}`,
      `--advertise-client-urls=http://127.0.0.1:${ep}`,
      `--listen-peer-urls=http://127.0.0.1:${pp}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${pp}`,
      `--initial-cluster=default=http://127.0.0.1:${pp}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ],
    join(dir, 'etcd.log'),
  );
  const kasArgs = [
    `--etcd-servers=http://127.0.0.1:${ep}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${ap}`,
    `--cert-dir=${join(dir, 'certs')}`,
    `--token-auth-file=${join(dir, 'tokens.csv')}`,
    '--authorization-mode=RBAC',
    '--service-account-issuer=https://kubernetes.default.svc',
    `--service-account-key-file=${join(dir, 'sa.pub')}`,
    `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
    '--service-cluster-ip-range=10.0.0.0/24',
    '--disable-admission-plugins=ServiceAccount',
    ...(auditLogPath
      ? [`--audit-policy-file=${join(dir, 'audit-policy.yaml')}`, `--audit-log-path=${auditLogPath}`, '--audit-log-mode=blocking']
      : []),
  ];
  let kas = start(kasBin, kasArgs, join(dir, 'kube-apiserver.log'));

  const url = `https://127.0.0.1:${ap}`;
  const logTail = (lines = 30): string => {
    const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8').split('\n').slice(-lines).join('\n') : '');
    return `--- kube-apiserver.log\n${read('kube-apiserver.log')}\n--- etcd.log\n${read('etcd.log')}`;
  };
  const kubeConfig = (token = adminToken): KubeConfig => {
    const kc = new KubeConfig();
    // The serving certificate is generated at start-up by the API server itself.
    kc.loadFromClusterAndUser({ name: 'envtest', server: url, skipTLSVerify: true }, { name: 'user', token });
    return kc;
  };
  const client = new KubeClient(kubeConfig());
  const admin = new Api(client, 'envtest-admin');

  const stop = async () => {
    client.close();
    await stopChild(kas);
    await stopChild(etcd);
    rmSync(dir, { recursive: true, force: true });
  };

  const waitReady = async (what: string) => {
    const until = Date.now() + 60_000;
    while (!(await readyzOk(client))) {
      if (kas.exitCode !== null || etcd.exitCode !== null || Date.now() > until) {
        const tail = logTail();
        await stop();
        throw new Error(`envtest: ${what}\n${tail}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  await waitReady('kube-apiserver not ready within 60 s (or a control-plane process exited)');

  let nsCount = 0;
  return {
    url,
    adminToken,
    dir,
    auditLogPath,
    kubeConfig,
    admin,
    logTail,
    stop,
    async restartApiServer(downMs = 1000) {
      await stopChild(kas);
      await new Promise((r) => setTimeout(r, downMs));
      kas = start(kasBin, kasArgs, join(dir, 'kube-apiserver.log'));
      await waitReady('kube-apiserver did not come back within 60 s');
    },
    async createNamespace(prefix = 't') {
      const name = `${prefix}-${process.pid.toString(36)}-${(nsCount++).toString(36)}-${randomBytes(2).toString('hex')}`;
      await admin.create(NAMESPACES, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
      return name;
    },
  };
}

async function readyzOk(client: KubeClient): Promise<boolean> {
  try {
    return (await client.text({ method: 'GET', path: '/readyz', timeoutMs: 2000 })).trim() === 'ok';
  } catch {
    return false; // not up yet
  }
}

const CRD_FILES = ['hubbroker.io_hubs.yaml', 'hubbroker.io_tenants.yaml', 'hubbroker.io_branches.yaml'];

/** Installs crds/*.yaml (server-side apply) and waits until the API server serves them. */
export async function installCRDs(api: Api): Promise<void> {
  const crds = CRD_FILES.map((f) => YAML.parse(readFileSync(join(repoRoot, 'crds', f), 'utf8')) as KubeObject);
  await Promise.all(crds.map((crd) => api.apply(CRDS, crd)));
  const deadline = Date.now() + 30_000;
  for (const crd of crds) {
    for (;;) {
      const live = await api.get<KubeObject & { status?: { conditions?: { type: string; status: string }[] } }>(CRDS, '', crd.metadata.name ?? '');
      if (live.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline) throw new Error(`CRD ${crd.metadata.name} not established within 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  // Established can precede discovery by a moment; wait until the group answers.
  for (;;) {
    try {
      await api.client.request({ method: 'GET', path: '/apis/hubbroker.io/v1alpha1' });
      return;
    } catch {
      if (Date.now() > deadline) throw new Error('hubbroker.io/v1alpha1 not served within 30 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * One control plane for a test file: started before its tests, stopped after. Read the
 * holder's `cp` inside tests. With `crds` (default true) the project's CRDs are installed.
 */
export function useControlPlane(options: ControlPlaneOptions & { crds?: boolean } = {}): { cp: ControlPlane } {
  const holder = {} as { cp: ControlPlane };
  beforeAll(async () => {
    holder.cp = await startControlPlane(options);
    if (options.crds !== false) await installCRDs(holder.cp.admin);
  }, 90_000);
  afterAll(async () => {
    await holder.cp?.stop();
  });
  return holder;
}
