/**
 * The command line of `hub-broker admin`: positionals and `--flags` checked against what the
 * commands declare. Each flag is a switch, takes one value, or takes one value each time it is
 * given (`--group a --group b`); any other flag given twice is refused.
 */

/** A mistake in the command line: exit code 2 with one line naming it. */
export class UsageError extends Error {}

export type FlagKind =
  | { readonly kind: 'switch' }
  | { readonly kind: 'value'; readonly value: string; readonly required?: boolean }
  | { readonly kind: 'repeatable'; readonly value: string };

export const SWITCH: FlagKind = { kind: 'switch' };
/** A flag with one value, shown in the help as `--name <value>`; `required`: the command cannot do without it. */
export const value = (shown: string, options: { required?: boolean } = {}): FlagKind => ({ kind: 'value', value: shown, ...options });
/** A flag given any number of times, each with a value; read with `Flags.values`. */
export const repeatable = (shown: string): FlagKind => ({ kind: 'repeatable', value: shown });

export type FlagSpec = Readonly<Record<string, FlagKind>>;

export class Flags {
  constructor(private readonly given: ReadonlyMap<string, true | readonly string[]>) {}

  has(name: string): boolean {
    return this.given.has(name);
  }

  /** The value of a one-value flag. */
  value(name: string): string | undefined {
    const v = this.given.get(name);
    return v === true || v === undefined ? undefined : v[0];
  }

  /** Every value of a repeatable flag, in the order given. */
  values(name: string): readonly string[] {
    const v = this.given.get(name);
    return v === true || v === undefined ? [] : v;
  }

  names(): IterableIterator<string> {
    return this.given.keys();
  }

  int(name: string): number | undefined {
    const v = this.value(name);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw new UsageError(`--${name} must be a non-negative integer`);
    return Number(v);
  }
}

export interface Parsed {
  readonly positionals: readonly string[];
  readonly flags: Flags;
}

export function parseArgs(args: readonly string[], spec: FlagSpec): Parsed {
  const positionals: string[] = [];
  const given = new Map<string, true | string[]>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (a === '-h') {
      given.set('help', true);
      continue;
    }
    if (!a.startsWith('--')) {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq === -1 ? undefined : eq);
    const flag = spec[name];
    if (!flag) throw new UsageError(`unknown option --${name}`);
    const before = given.get(name);
    if (before !== undefined && flag.kind !== 'repeatable') throw new UsageError(`--${name} is given more than once`);
    if (flag.kind === 'switch') {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`);
      given.set(name, true);
      continue;
    }
    let v: string | undefined;
    if (eq !== -1) v = a.slice(eq + 1);
    else v = args[++i];
    if (v === undefined) throw new UsageError(`--${name} needs a value`);
    given.set(name, [...(Array.isArray(before) ? before : []), v]);
  }
  return { positionals, flags: new Flags(given) };
}

/** How a flag reads in the help: `[--suspended]`, `[--grace-seconds <seconds>]`, `[--group <group>]...`, `--file <file>`. */
export function flagUsage(name: string, flag: FlagKind): string {
  if (flag.kind === 'switch') return `[--${name}]`;
  if (flag.kind === 'repeatable') return `[--${name} ${flag.value}]...`;
  return flag.required ? `--${name} ${flag.value}` : `[--${name} ${flag.value}]`;
}
