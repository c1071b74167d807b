/**
 * The operator as a process among others: restarts, two instances and one leader, an API server
 * that goes away, and its probe and metrics endpoints.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { Branch } from '../../operator/api/v1alpha1.js';
import { KubeClient } from '../../operator/kube/client.js';
import { Api, BRANCHES, LEASES, TENANTS, type KubeObject } from '../../operator/kube/resources.js';
import type { Operator } from '../../operator/main.js';
import { LeaderElector, type Lease } from '../../operator/runtime/leader.js';
import { repoRoot, skipEnvtest } from '../envtest/binaries.js';
import { useControlPlane } from '../envtest/harness.js';
import { useTestDatabase } from '../support/pg.js';
import { createBranch, createHub, createTenant, eventually, inspectStore, readSecret, startTestOperator, waitReady } from './support.js';

describe.skipIf(skipEnvtest)('operator lifecycle', () => {
  const env = useControlPlane();
  const db = useTestDatabase('op_life');
  const running: Operator[] = [];
  const start = async (ns: string, options: Parameters<typeof startTestOperator>[2] = {}) => {
    const op = await startTestOperator(env.cp, ns, options);
    running.push(op);
    return op;
  };
  afterAll(async () => {
    await Promise.all(running.map((op) => op.stop()));
  });

  it('converges after a restart in the middle of its work, without reissuing keys', async () => {
    const ns = await env.cp.createNamespace('restart');
    const first = await start(ns);
    await createHub(env.cp.admin, ns, db.url);
    await createTenant(env.cp.admin, ns, 'acme');
    const names = Array.from({ length: 8 }, (_, i) => `shop-${i}`);
    await Promise.all(names.map((n) => createBranch(env.cp.admin, ns, n, 'acme')));
    // Stop as soon as some, not all, branches have their credentials.
    const done = await eventually(async () => {
      const have = (await Promise.all(names.map((n) => readSecret(env.cp.admin, ns, `${n}-credentials`)))).filter(Boolean);
      if (have.length === 0) throw new Error('nothing yet');
      return have.length;
    }, 20_000, 20);
    await first.stop();
    const keysBefore = Object.fromEntries(
      await Promise.all(names.map(async (n) => [n, (await readSecret(env.cp.admin, ns, `${n}-credentials`))?.API_KEY] as const)),
    );
    expect(done).toBeGreaterThan(0);

    await start(ns);
    for (const n of names) await waitReady(env.cp.admin, BRANCHES, ns, n);
    const inspect = inspectStore(db.url);
    try {
      for (const n of names) {
        const key = (await readSecret(env.cp.admin, ns, `${n}-credentials`))?.API_KEY ?? '';
        if (keysBefore[n]) expect(key).toBe(keysBefore[n]);
        expect(await inspect.verifyBranchKey('acme', n, key)).toMatchObject({ ok: true });
      }
      expect(await inspect.countBranches('acme')).toBe(names.length);
    } finally {
      await inspect.pool.end();
    }
    await eventually(async () => expect((await env.cp.admin.get<KubeObject & { status?: { branches?: number } }>(TENANTS, ns, 'acme')).status?.branches).toBe(8));
  });

  it('elects one leader among two instances; only the leader reconciles; the other takes over', async () => {
    const ns = await env.cp.createNamespace('leader');
    const a = await start(ns, { identity: 'op-a', leaderElection: true });
    const b = await start(ns, { identity: 'op-b', leaderElection: true });
    const leaderOf = () => eventually(() => {
      const leaders = [a, b].filter((o) => o.isLeader());
      if (leaders.length !== 1) throw new Error(`${leaders.length} leaders`);
      return leaders[0] as Operator;
    });
    const leader = await leaderOf();
    const standby = leader === a ? b : a;
    const lease = await env.cp.admin.get<Lease>(LEASES, ns, 'hub-broker-operator');
    expect(lease.spec?.holderIdentity).toBe(leader === a ? 'op-a' : 'op-b');

    await createHub(env.cp.admin, ns, db.url);
    await createTenant(env.cp.admin, ns, 'acme');
    await createBranch(env.cp.admin, ns, 'one', 'acme');
    await waitReady(env.cp.admin, BRANCHES, ns, 'one');
    const count = async (op: Operator) => (await op.metrics.reconciles.get()).values.reduce((s, v) => s + v.value, 0);
    expect(await count(leader)).toBeGreaterThan(0);
    expect(await count(standby)).toBe(0);
    expect(standby.isLeader()).toBe(false);

    // A graceful stop hands the lease over at once.
    await leader.stop();
    await eventually(() => expect(standby.isLeader()).toBe(true), 5_000);
    expect((await env.cp.admin.get<Lease>(LEASES, ns, 'hub-broker-operator')).spec?.holderIdentity).toBe(standby === a ? 'op-a' : 'op-b');
    await createBranch(env.cp.admin, ns, 'two', 'acme');
    await waitReady(env.cp.admin, BRANCHES, ns, 'two');
    expect(await count(standby)).toBeGreaterThan(0);
  });

  it('takes a lease over only after it expired when the holder vanished without releasing it', async () => {
    const ns = await env.cp.createNamespace('lease');
    const api = new Api(new KubeClient(env.cp.kubeConfig()));
    const log = pino({ level: 'silent' });
    const states: Record<string, boolean> = {};
    const elector = (identity: string) =>
      new LeaderElector({
        api,
        namespace: ns,
        name: 'crash-test',
        identity,
        leaseDurationMs: 3_000,
        renewDeadlineMs: 2_000,
        retryPeriodMs: 200,
        log,
        onStartedLeading: () => (states[identity] = true),
        onStoppedLeading: () => (states[identity] = false),
      });
    const x = elector('x');
    x.start();
    await eventually(() => expect(states.x).toBe(true));
    const y = elector('y');
    y.start();
    await x.stop({ release: false }); // a crash: the lease still names x
    const gone = Date.now();
    await eventually(() => expect(states.y).toBe(true), 10_000);
    expect(Date.now() - gone).toBeGreaterThanOrEqual(2_500);
    const lease = await api.get<Lease>(LEASES, ns, 'crash-test');
    expect(lease.spec).toMatchObject({ holderIdentity: 'y', leaseTransitions: 1 });
    await y.stop();
    expect((await api.get<Lease>(LEASES, ns, 'crash-test')).spec?.holderIdentity).toBe('');
    api.client.close();
  });

  it('keeps working when the API server goes away and comes back (informers restart with backoff)', async () => {
    const ns = await env.cp.createNamespace('outage');
    const op = await start(ns);
    await createHub(env.cp.admin, ns, db.url);
    await createTenant(env.cp.admin, ns, 'acme');
    await createBranch(env.cp.admin, ns, 'before', 'acme');
    await waitReady(env.cp.admin, BRANCHES, ns, 'before');
    await env.cp.restartApiServer(1_500);
    const restarts = (await op.metrics.informerRestarts.get()).values.reduce((s, v) => s + v.value, 0);
    expect(restarts).toBeGreaterThan(0);
    await createBranch(env.cp.admin, ns, 'after', 'acme');
    const b = await waitReady<Branch>(env.cp.admin, BRANCHES, ns, 'after', 'True', 'Ready', 30_000);
    expect(b.status?.secretName).toBe('after-credentials');
  });

  it('serves /healthz, /readyz and /metrics', async () => {
    const op = running.find((o) => o.isLeader()) ?? (await start(await env.cp.createNamespace('probes')));
    const get = (path: string) => fetch(`http://127.0.0.1:${op.port}${path}`);
    expect((await get('/healthz')).status).toBe(200);
    await eventually(async () => expect((await get('/readyz')).status).toBe(200));
    const metrics = await (await get('/metrics')).text();
    for (const name of [
      'hub_broker_operator_reconcile_total',
      'hub_broker_operator_reconcile_errors_total',
      'hub_broker_operator_reconcile_duration_seconds_bucket',
      'hub_broker_operator_queue_depth',
      'hub_broker_operator_leader 1',
    ]) {
      expect(metrics).toContain(name);
    }
    expect(metrics).toMatch(/hub_broker_operator_reconcile_total\{kind="Branch",result="success"\} [1-9]/);
    expect((await get('/nope')).status).toBe(404);
  });

  it('runs as `hub-broker operator` from a kubeconfig and shuts down gracefully on SIGTERM', async () => {
    const ns = await env.cp.createNamespace('cli');
    const kubeconfig = join(env.cp.dir, 'kubeconfig.yaml');
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: envtest, cluster: {server: "' + env.cp.url + '", insecure-skip-tls-verify: true}}]',
        'users: [{name: admin, user: {token: "' + env.cp.adminToken + '"}}]',
        'contexts: [{name: envtest, context: {cluster: envtest, user: admin}}]',
        'current-context: envtest',
      ].join('\n'),
    );
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'cli/hub-broker.ts', 'operator', '--namespace', ns, '--watch-namespace', ns, '--identity', 'cli-op', '--metrics-port', String(port), '--log-level', 'warn'],
      { cwd: repoRoot, env: { ...process.env, KUBECONFIG: kubeconfig }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await eventually(async () => expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200), 30_000, 250);
      await eventually(async () => expect((await env.cp.admin.get<Lease>(LEASES, ns, 'hub-broker-operator')).spec?.holderIdentity).toBe('cli-op'), 20_000);
      child.kill('SIGTERM');
      expect(await exited, output).toBe(0);
      // The lease was handed back on the way out.
      expect((await env.cp.admin.get<Lease>(LEASES, ns, 'hub-broker-operator')).spec?.holderIdentity).toBe('');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 60_000);
});
