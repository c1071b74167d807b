/**
 * The path of a request as sent, for routing: never normalised. WHATWG URL parsing resolves dot
 * segments, also percent-encoded ones (`/admin/%2e%2e/metrics` is `/metrics`) and turns `\` into
 * `/`, so a path is checked on its raw text first and such requests are refused, not resolved.
 */

const DOT_SEGMENT = /^(\.|%2e){1,2}$/i;

export type RequestPath = { readonly ok: true; readonly path: string; readonly url: URL } | { readonly ok: false; readonly message: string };

export function requestPath(rawUrl: string | undefined): RequestPath {
  const raw = rawUrl ?? '/';
  const q = raw.indexOf('?');
  const path = q === -1 ? raw : raw.slice(0, q);
  if (!path.startsWith('/')) return { ok: false, message: 'the request target must be a path' };
  if (path.includes('\\')) return { ok: false, message: 'a path may not hold "\\"' };
  for (const segment of path.split('/')) {
    if (DOT_SEGMENT.test(segment)) return { ok: false, message: 'a path may not hold "." or ".." segments (they are not resolved)' };
    // An encoded "/" inside a segment would be one after decoding: refused, as the segment could not name anything.
    if (/%2f|%5c/i.test(segment)) return { ok: false, message: 'a path segment may not hold an encoded "/" or "\\"' };
  }
  return { ok: true, path, url: new URL(raw, 'http://hub') };
}
