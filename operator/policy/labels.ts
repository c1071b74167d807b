/**
 * Which of a resource's labels its children inherit. Argo CD tracks what an Application owns
 * by `app.kubernetes.io/instance` (its default label) or `argocd.argoproj.io/*`; a child carrying
 * them would look like a stray resource of the Application and be pruned or shown out of sync.
 */
const NEVER_COPIED_KEYS = new Set(['app.kubernetes.io/instance']);
const NEVER_COPIED_PREFIXES = ['argocd.argoproj.io/', 'hubbroker.io/', 'kubectl.kubernetes.io/'];

export function isInheritable(key: string): boolean {
  return !NEVER_COPIED_KEYS.has(key) && !NEVER_COPIED_PREFIXES.some((p) => key.startsWith(p));
}

/** The parent's labels minus tracking labels, under the operator's own (which win). */
export function childLabels(parent: Readonly<Record<string, string>> | undefined, own: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parent ?? {})) if (isInheritable(k)) out[k] = v;
  return { ...out, ...own };
}
