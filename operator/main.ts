/**
 * Starts the operator: informers and probe server on every instance, reconcile workers on the
 * leader only. Used by `hub-broker operator` and by the tests, which run several in one process.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { HubStoreOptions } from '../hub/store/index.js';
import type { OperatorConfig } from './config.js';
import { HubStores } from './hub-stores.js';
import { KubeClient } from './kube/client.js';
import { Api } from './kube/resources.js';
import { createLogger } from './log.js';
import { OperatorMetrics } from './metrics.js';
import { Controller } from './runtime/controller.js';
import { EventRecorder } from './runtime/events.js';
import { LeaderElector } from './runtime/leader.js';
import { startProbeServer } from './server.js';

export interface StartOptions {
  readonly config: OperatorConfig;
  readonly kubeConfig: KubeConfig;
  readonly log?: Logger;
  /** Hub store options (tests lower the argon2 cost). */
  readonly store?: HubStoreOptions;
  /** Node process metrics on /metrics (default true). */
  readonly processMetrics?: boolean;
}

export interface Operator {
  /** The port of /metrics, /healthz and /readyz (useful with metricsPort 0). */
  readonly port: number;
  readonly metrics: OperatorMetrics;
  readonly controller: Controller;
  isLeader(): boolean;
  /** Graceful: finishes reconciles in flight, releases the lease, closes connections. */
  stop(): Promise<void>;
}

export async function startOperator(options: StartOptions): Promise<Operator> {
  const { config } = options;
  const log = options.log ?? createLogger(config.logLevel);
  const client = new KubeClient(options.kubeConfig);
  const api = new Api(client);
  const metrics = new OperatorMetrics({ processMetrics: options.processMetrics });
  const stores = new HubStores(api, { store: options.store });
  const controller = new Controller({
    api,
    log,
    metrics,
    events: new EventRecorder(api, config.identity, log),
    stores,
    defaultImage: config.hubImage,
    watchNamespace: config.watchNamespace || undefined,
    workers: config.workers,
    resyncMs: config.resyncMs,
    backoff: { baseMs: config.backoffBaseMs, capMs: config.backoffCapMs },
    informerBackoff: { baseMs: Math.min(config.backoffBaseMs, 1_000), capMs: Math.min(config.backoffCapMs, 30_000) },
  });
  controller.startInformers();
  const server = await startProbeServer({
    host: config.metricsHost,
    port: config.metricsPort,
    registry: metrics.registry,
    ready: () => controller.synced(),
  });

  let elector: LeaderElector | undefined;
  if (config.leaderElection) {
    elector = new LeaderElector({
      api,
      namespace: config.namespace,
      name: config.leaseName,
      identity: config.identity,
      leaseDurationMs: config.leaseDurationMs,
      renewDeadlineMs: config.renewDeadlineMs,
      retryPeriodMs: config.retryPeriodMs,
      log,
      onStartedLeading: () => {
        metrics.leader.set(1);
        controller.startWorkers();
      },
      onStoppedLeading: () => {
        metrics.leader.set(0);
        void controller.stopWorkers();
      },
    });
    elector.start();
  } else {
    metrics.leader.set(1);
    controller.startWorkers();
  }
  log.info({ identity: config.identity, watchNamespace: config.watchNamespace || '(all)', leaderElection: config.leaderElection }, 'operator started');

  let stopping: Promise<void> | undefined;
  return {
    port: server.port,
    metrics,
    controller,
    isLeader: () => stopping === undefined && (elector ? elector.isLeader() : true),
    stop: () =>
      (stopping ??= (async () => {
        // Reconciles in flight finish (bounded) before the lease goes, so a successor never overlaps them.
        await Promise.race([controller.stopWorkers(), new Promise((r) => setTimeout(r, config.shutdownTimeoutMs).unref())]);
        await elector?.stop();
        await controller.stop();
        await stores.close();
        await server.close();
        client.close();
        log.info('operator stopped');
      })()),
  };
}
