/**
 * The admin API's routing table: a path pattern with `:params` and a handler per method.
 * Matching is a pure function, so 404 versus 405 (with `Allow`) is decided in one place.
 */

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface Route<H> {
  /** e.g. `/admin/tenants/:tenant/branches/:branch`. */
  readonly path: string;
  readonly methods: Partial<Record<Method, H>>;
}

export type Match<H> =
  | { readonly kind: 'found'; readonly handler: H; readonly params: Readonly<Record<string, string>> }
  | { readonly kind: 'method_not_allowed'; readonly allow: string }
  | { readonly kind: 'not_found' };

interface Compiled<H> {
  readonly segments: readonly string[];
  readonly route: Route<H>;
}

function split(path: string): string[] {
  // One trailing slash is tolerated: `/admin/tenants/` is `/admin/tenants`.
  const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  return trimmed.split('/').slice(1);
}

/** Compiles routes once; the returned function matches a method and a raw (still encoded) path. */
export function createRouter<H>(routes: readonly Route<H>[]): (method: string, path: string) => Match<H> {
  const compiled: Compiled<H>[] = routes.map((route) => ({ segments: split(route.path), route }));
  return (method, path) => {
    const parts = split(path);
    for (const { segments, route } of compiled) {
      if (segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < segments.length && ok; i++) {
        const seg = segments[i] as string;
        const part = parts[i] as string;
        if (seg.startsWith(':')) {
          const value = decode(part);
          if (value === undefined || value === '') ok = false;
          else params[seg.slice(1)] = value;
        } else {
          ok = seg === part;
        }
      }
      if (!ok) continue;
      // HEAD is answered as GET (without a body).
      const m = (method === 'HEAD' ? 'GET' : method) as Method;
      const handler = route.methods[m];
      if (handler) return { kind: 'found', handler, params };
      return { kind: 'method_not_allowed', allow: allowHeader(route) };
    }
    return { kind: 'not_found' };
  };
}

function decode(part: string): string | undefined {
  try {
    return decodeURIComponent(part);
  } catch {
    return undefined;
  }
}

export function allowHeader(route: Route<unknown>): string {
  const methods = Object.keys(route.methods) as Method[];
  return (methods.includes('GET') ? [...methods, 'HEAD'] : methods).join(', ');
}
