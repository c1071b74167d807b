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
  | { readonly kind: 'bad_param'; readonly message: string }
  | { readonly kind: 'not_found' };

/** Why a path parameter is refused (400), or undefined when it is fine. */
export type ParamCheck = (name: string, value: string) => string | undefined;

interface Compiled<H> {
  readonly segments: readonly string[];
  readonly route: Route<H>;
}

function split(path: string): string[] {
  // One trailing slash is tolerated: `/admin/tenants/` is `/admin/tenants`.
  const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  return trimmed.split('/').slice(1);
}

/**
 * Compiles routes once; the returned function matches a method and a raw (still encoded) path.
 * A path whose fixed segments match a route but whose parameter `check` refuses is `bad_param`
 * (unless another route takes it).
 */
export function createRouter<H>(routes: readonly Route<H>[], check: ParamCheck = () => undefined): (method: string, path: string) => Match<H> {
  const compiled: Compiled<H>[] = routes.map((route) => ({ segments: split(route.path), route }));
  return (method, path) => {
    const parts = split(path);
    let refused: string | undefined;
    for (const { segments, route } of compiled) {
      if (segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      let problem: string | undefined;
      for (let i = 0; i < segments.length && ok; i++) {
        const seg = segments[i] as string;
        const part = parts[i] as string;
        if (seg.startsWith(':')) {
          const name = seg.slice(1);
          const value = decode(part);
          if (value === '') ok = false;
          else if (value === undefined) problem ??= `${name}: not a valid percent-encoding`;
          else {
            problem ??= check(name, value);
            params[name] = value;
          }
        } else {
          ok = seg === part;
        }
      }
      if (!ok) continue;
      if (problem !== undefined) {
        refused ??= problem;
        continue;
      }
      // HEAD is answered as GET (without a body).
      const m = (method === 'HEAD' ? 'GET' : method) as Method;
      const handler = route.methods[m];
      if (handler) return { kind: 'found', handler, params };
      return { kind: 'method_not_allowed', allow: allowHeader(route) };
    }
    return refused === undefined ? { kind: 'not_found' } : { kind: 'bad_param', message: refused };
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
