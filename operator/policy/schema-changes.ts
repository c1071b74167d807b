/**
 * What a Tenant's `spec.schemaChanges` asks of the hub, given the changes it published already
 * (docs/kubernetes.md "Schema changes"). Changes are matched by name; a published change never
 * changes, so its SQL edited in the spec is a fault to report, not a change to make.
 */

export interface SchemaChangeSpec {
  readonly name: string;
  readonly sql: string;
  readonly description?: string;
}

export interface PublishedChange {
  readonly version: number;
  readonly name: string | null;
  readonly sql: string;
}

export type SchemaChangesPlan =
  /** Publish these, in this order (the spec's), after `latest`. */
  | { readonly kind: 'publish'; readonly changes: readonly SchemaChangeSpec[]; readonly latest: number }
  /** Published changes whose SQL the spec now says differently: publish nothing until it is put back. */
  | { readonly kind: 'modified'; readonly changes: readonly { readonly name: string; readonly version: number }[]; readonly latest: number };

export function planSchemaChanges(spec: readonly SchemaChangeSpec[], published: readonly PublishedChange[]): SchemaChangesPlan {
  const byName = new Map(published.filter((p) => p.name !== null).map((p) => [p.name as string, p]));
  const latest = published.reduce((max, p) => Math.max(max, p.version), 0);
  const modified = spec.flatMap((s) => {
    const p = byName.get(s.name);
    return p && p.sql !== s.sql ? [{ name: s.name, version: p.version }] : [];
  });
  if (modified.length > 0) return { kind: 'modified', changes: modified, latest };
  return { kind: 'publish', changes: spec.filter((s) => !byName.has(s.name)), latest };
}

/** One line for a condition message. */
export function modifiedMessage(changes: readonly { readonly name: string; readonly version: number }[]): string {
  const list = changes.map((c) => `"${c.name}" (version ${c.version})`).join(', ');
  return `spec.schemaChanges ${list} ${changes.length === 1 ? 'was' : 'were'} published with other SQL; a published schema change cannot change: put its SQL back and add a new change`;
}
