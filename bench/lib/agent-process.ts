/**
 * `hub-broker agent` as a child process for benchmarks: compiled like the hub (plain
 * JavaScript, as in production; BENCH_HUB_TSX=1 runs the sources through tsx), its output
 * kept for the error shown if it exits early, stopped with SIGTERM (then SIGKILL) at cleanup.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { buildHub, onCleanup, ROOT, sleep, track } from './hub-process.js';

/** The node arguments that run `hub-broker agent`. */
export async function agentCommand(): Promise<string[]> {
  if (process.env.BENCH_HUB_TSX === '1') return ['--import', 'tsx', 'cli/hub-broker.ts', 'agent'];
  return [join(await buildHub(), 'cli', 'hub-broker.js'), 'agent'];
}

/** Starts an agent with `env` (its settings) on top of this process's environment. */
export function startAgentProcess(command: readonly string[], env: Record<string, string>, label: string, expectedExit: () => boolean = () => false): ChildProcess {
  const child = track(spawn(process.execPath, [...command], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }));
  let output = '';
  const keep = (d: Buffer): void => {
    output = (output + d.toString()).slice(-8000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.once('exit', (code, signal) => {
    if (!expectedExit()) console.error(`agent ${label} exited (${code ?? signal}):\n${output}`);
  });
  onCleanup(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}
