/**
 * When a branch gets a new API key. The key is shown once (it is only stored hashed), so it
 * lives in the credentials Secret and nowhere else; a new one is issued only when the hub
 * database has no branch yet, when the user asks (spec.credentials.rotate changed), or when a
 * live read shows the Secret is really gone, never because a cache has not seen it.
 */
export interface KeyInput {
  /** The branch row in the hub database; null when there is none. */
  readonly row: { readonly hasKey: boolean } | null;
  /** The credentials Secret, read live; null when it does not exist. */
  readonly secret: {
    readonly apiKey: string | undefined;
    readonly rotate: string | undefined;
    /** The key was written to the Secret before the hub database accepted it. */
    readonly pending?: boolean;
  } | null;
  /** spec.credentials.rotate ('' when unset). */
  readonly rotate: string;
  readonly graceSeconds: number;
}

export type KeyAction =
  | { readonly kind: 'create' }
  | { readonly kind: 'rotate'; readonly graceSeconds: number; readonly why: 'requested' | 'secret-lost' }
  | { readonly kind: 'keep'; readonly apiKey: string }
  /** A rotation stopped between writing the Secret and the hub database: finish it with the Secret's key. */
  | { readonly kind: 'finish-rotation'; readonly apiKey: string; readonly graceSeconds: number }
  | { readonly kind: 'revoked' };

export function decideKey(input: KeyInput): KeyAction {
  if (input.row === null) return { kind: 'create' };
  const apiKey = input.secret?.apiKey;
  // Agents still running with the lost key keep working through the grace period.
  if (apiKey === undefined || apiKey === '') return { kind: 'rotate', graceSeconds: input.graceSeconds, why: 'secret-lost' };
  if (input.secret?.pending) return { kind: 'finish-rotation', apiKey, graceSeconds: input.graceSeconds };
  if ((input.secret?.rotate ?? '') !== input.rotate) return { kind: 'rotate', graceSeconds: input.graceSeconds, why: 'requested' };
  if (!input.row.hasKey) return { kind: 'revoked' };
  return { kind: 'keep', apiKey };
}
