/** `hub-broker operator`: runs the Kubernetes operator until SIGTERM or SIGINT. */
import { KubeConfig } from '@kubernetes/client-node';
import { ConfigError, USAGE, loadConfig } from '../../operator/config.js';
import { createLogger } from '../../operator/log.js';
import { startOperator } from '../../operator/main.js';

export async function run(args: string[]): Promise<number> {
  let loaded;
  try {
    loaded = loadConfig(args);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`hub-broker operator: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (loaded.help) {
    console.log(USAGE);
    return 0;
  }
  const { config } = loaded;
  const log = createLogger(config.logLevel);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault(); // in-cluster service account, else KUBECONFIG or ~/.kube/config

  // Log and carry on: one bad promise must not take the operator down (and into a crash loop).
  process.on('unhandledRejection', (reason) => log.error({ err: reason instanceof Error ? reason.message : String(reason) }, 'unhandled rejection'));

  const operator = await startOperator({ config, kubeConfig, log });
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      log.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  await operator.stop();
  return 0;
}
