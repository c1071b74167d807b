/**
 * The admin API's way to a branch's dead letters and conflicts (docs/api.md "Dead letters and
 * conflicts"): a `triage.request` goes to the branch's connection, on this instance or, through
 * the engine, on the instance holding it; the agent's `triage.result` comes back the same way
 * and answers the waiting API call. The branch's database is the truth; the hub keeps nothing.
 */
import type { TriageRequest, TriageResult } from '../protocol/index.js';
import type { Engine, TriageMessage, TriageReplyMessage } from './engine/types.js';
import type { Logger } from './logger.js';
import type { ConnectionRegistry, HubConnection } from './registry.js';

export class TriageError extends Error {
  override readonly name = 'TriageError';
  constructor(
    readonly reason: 'not_connected' | 'timeout',
    message: string,
  ) {
    super(message);
  }
}

interface Waiting {
  readonly tenant: string;
  readonly branch: string;
  readonly resolve: (r: TriageResult) => void;
  readonly timer: NodeJS.Timeout;
}

export class TriageRelay {
  /** API calls on this instance waiting for an answer, by request id. */
  private readonly waiting = new Map<string, Waiting>();
  /** Requests from other instances passed to a connection here: request id → where to answer. */
  private readonly forwarded = new Map<string, { readonly replyTo: string; readonly tenant: string; readonly branch: string; readonly at: number }>();
  private seq = 0;

  constructor(
    private readonly instanceId: string,
    private readonly engine: Engine,
    private readonly registry: ConnectionRegistry<HubConnection>,
    private readonly logger: Logger,
    private readonly timeoutMs = 30_000,
  ) {}

  /** Asks the branch's agent; rejects with TriageError when it is not connected or does not answer in time. */
  async ask(tenant: string, branch: string, request: Omit<TriageRequest, 'type' | 'id'>): Promise<TriageResult> {
    const frame: TriageRequest = { type: 'triage.request', id: `${this.instanceId}:t${++this.seq}`, ...request };
    const answered = new Promise<TriageResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(frame.id);
        reject(new TriageError('timeout', `branch ${branch} did not answer within ${this.timeoutMs / 1000} s`));
      }, this.timeoutMs);
      timer.unref();
      this.waiting.set(frame.id, { tenant, branch, resolve, timer });
    });
    answered.catch(() => undefined);
    if (!(await this.pass(tenant, branch, frame, this.instanceId))) {
      const w = this.waiting.get(frame.id);
      if (w) clearTimeout(w.timer);
      this.waiting.delete(frame.id);
      throw new TriageError('not_connected', `branch ${branch} is not connected; its dead letters and conflicts are in its own database (hub-broker agent dead-letters)`);
    }
    return answered;
  }

  /** To the branch's connection here, or to the instance holding it. False: connected nowhere. */
  private async pass(tenant: string, branch: string, frame: TriageRequest, replyTo: string): Promise<boolean> {
    const local = this.registry.get(tenant, branch);
    if (local?.send(frame)) {
      if (replyTo !== this.instanceId) this.forwarded.set(frame.id, { replyTo, tenant, branch, at: Date.now() });
      return true;
    }
    if (this.engine.kind === 'memory' || replyTo !== this.instanceId) return false;
    const loc = (await this.engine.locate(tenant)).get(branch);
    if (!loc || loc.server === this.instanceId) return false;
    await this.engine.send(loc.server, { kind: 'triage', tenant, branch, frame, replyTo });
    return true;
  }

  /** A `triage.result` from the agent of `tenant/branch`. Answers from any other branch are ignored. */
  onResult(tenant: string, branch: string, result: TriageResult): void {
    const w = this.waiting.get(result.id);
    if (w && w.tenant === tenant && w.branch === branch) {
      clearTimeout(w.timer);
      this.waiting.delete(result.id);
      w.resolve(result);
      return;
    }
    const f = this.forwarded.get(result.id);
    if (f && f.tenant === tenant && f.branch === branch) {
      this.forwarded.delete(result.id);
      this.engine.send(f.replyTo, { kind: 'triage-reply', tenant, branch, frame: result }).catch((err: unknown) => this.logger.warn({ err }, 'could not pass a triage answer back'));
      return;
    }
    // Debug only: an agent could send these unasked, and must not fill the log.
    this.logger.debug({ tenant, branch, id: result.id }, 'triage answer nobody waits for (timed out, or not asked)');
  }

  /** What other instances send about triage. */
  receive(m: TriageMessage | TriageReplyMessage): void {
    if (m.kind === 'triage-reply') {
      this.onResult(m.tenant, m.branch, m.frame);
      return;
    }
    // Forgotten forwards (the agent never answered) do not pile up.
    const old = Date.now() - 2 * this.timeoutMs;
    for (const [id, f] of this.forwarded) if (f.at < old) this.forwarded.delete(id);
    void this.pass(m.tenant, m.branch, m.frame, m.replyTo).then((ok) => {
      if (ok) return;
      const frame: TriageResult = { type: 'triage.result', id: m.frame.id, status: 'refused', message: `branch ${m.branch} is no longer connected` };
      return this.engine.send(m.replyTo, { kind: 'triage-reply', tenant: m.tenant, branch: m.branch, frame });
    });
  }
}
