import { describe, expect, it } from 'vitest';
import { createRouter } from './router.js';

describe('admin router', () => {
  const match = createRouter([
    { path: '/admin/tenants', methods: { GET: 'list', POST: 'create' } },
    { path: '/admin/tenants/:tenant', methods: { GET: 'show', PATCH: 'update', DELETE: 'delete' } },
    { path: '/admin/tenants/:tenant/branches/:branch/suspend', methods: { POST: 'suspend' } },
  ]);

  it('finds the handler and decodes path parameters', () => {
    expect(match('GET', '/admin/tenants')).toEqual({ kind: 'found', handler: 'list', params: {} });
    expect(match('PATCH', '/admin/tenants/acme')).toEqual({ kind: 'found', handler: 'update', params: { tenant: 'acme' } });
    expect(match('POST', '/admin/tenants/a%2Db/branches/x/suspend')).toEqual({ kind: 'found', handler: 'suspend', params: { tenant: 'a-b', branch: 'x' } });
  });

  it('tolerates one trailing slash and answers HEAD as GET', () => {
    expect(match('GET', '/admin/tenants/')).toMatchObject({ kind: 'found', handler: 'list' });
    expect(match('HEAD', '/admin/tenants/acme')).toMatchObject({ kind: 'found', handler: 'show' });
  });

  it('tells a path that exists without the method (405 with Allow) from one that does not (404)', () => {
    expect(match('PUT', '/admin/tenants')).toEqual({ kind: 'method_not_allowed', allow: 'GET, POST, HEAD' });
    expect(match('GET', '/admin/tenants/a/branches/b/suspend')).toEqual({ kind: 'method_not_allowed', allow: 'POST' });
    expect(match('GET', '/admin/tenant')).toEqual({ kind: 'not_found' });
    expect(match('GET', '/admin/tenants/a/b')).toEqual({ kind: 'not_found' });
    expect(match('GET', '/admin/tenants//')).toEqual({ kind: 'not_found' });
  });

  it('refuses a parameter that is not valid percent-encoding or that the check refuses, unless another route takes the path', () => {
    const checked = createRouter(
      [
        { path: '/admin/tenants/:tenant', methods: { GET: 'show' } },
        { path: '/admin/tenants/:tenant/branches/:branch/suspend', methods: { POST: 'suspend' } },
        { path: '/admin/things/:id', methods: { GET: 'thing' } },
        { path: '/admin/things/special', methods: { GET: 'special' } },
      ],
      (name, value) => (name !== 'id' && !/^[a-z]+$/.test(value) ? `${name}: bad` : name === 'id' && !/^\d+$/.test(value) ? 'id: bad' : undefined),
    );
    expect(checked('GET', '/admin/tenants/%E0%A4%A')).toEqual({ kind: 'bad_param', message: 'tenant: not a valid percent-encoding' });
    expect(checked('GET', '/admin/tenants/a%00b')).toEqual({ kind: 'bad_param', message: 'tenant: bad' });
    expect(checked('POST', '/admin/tenants/acme/branches/B%20/suspend')).toEqual({ kind: 'bad_param', message: 'branch: bad' });
    expect(checked('GET', '/admin/things/special')).toEqual({ kind: 'found', handler: 'special', params: {} });
    expect(checked('GET', '/admin/things/7')).toEqual({ kind: 'found', handler: 'thing', params: { id: '7' } });
    expect(checked('GET', '/admin/things/x')).toEqual({ kind: 'bad_param', message: 'id: bad' });
    expect(checked('GET', '/admin/tenants/acme')).toMatchObject({ kind: 'found' });
  });
});
