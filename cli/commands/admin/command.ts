/** What each `hub-broker admin <resource> <verb>` declares: its arguments, options and the call it makes. */
import type { AdminClient } from '../../admin-client.js';
import type { Flags, FlagSpec } from './args.js';

export interface Invocation {
  readonly args: readonly string[];
  readonly flags: Flags;
  readonly client: AdminClient;
}

export interface Outcome {
  /** The API's JSON answer, printed unchanged with `--json`. */
  readonly body: unknown;
  /** How to show it to a person. */
  readonly human: (body: never) => string;
  /** The answer holds an API key, shown this once. */
  readonly secret?: boolean;
}

export interface Command {
  /** Arguments after `<resource> <verb>`, as shown in the help. */
  readonly args: readonly string[];
  /** Options of this command besides the global ones, in the order the help shows them. */
  readonly flags: FlagSpec;
  readonly summary: string;
  readonly run: (inv: Invocation) => Promise<Outcome>;
}

/** A resource's verbs. */
export type Commands = Readonly<Record<string, Command>>;

export const enc = encodeURIComponent;
export const tenantPath = (t: string): string => `/admin/tenants/${enc(t)}`;
export const branchPath = (t: string, b: string): string => `${tenantPath(t)}/branches/${enc(b)}`;

/** The positional arguments of an invocation; their count was checked against `Command.args`. */
export function arg(inv: Invocation, i: number): string {
  return inv.args[i] as string;
}
