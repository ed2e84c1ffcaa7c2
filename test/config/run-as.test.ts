import { describe, expect, it } from 'vitest';
import { resolveRunAs } from '../../src/config/run-as.ts';

describe('resolveRunAs (melange rule, shared by the compiler and the root accounts)', () => {
  it('resolves the default, root, numbers and declared users', () => {
    expect(resolveRunAs(undefined, [])).toEqual({ ok: true, uid: 1000, gid: 1000 });
    expect(resolveRunAs('root', [])).toEqual({ ok: true, uid: 0, gid: 0 });
    expect(resolveRunAs('4242', [])).toEqual({ ok: true, uid: 4242, gid: 4242 });
    expect(resolveRunAs('500', [{ username: 'svc', uid: 500, gid: 50 }])).toEqual({ ok: true, uid: 500, gid: 50 });
    expect(resolveRunAs('svc', [{ username: 'svc', uid: 500 }])).toEqual({ ok: true, uid: 500, gid: 500 });
  });
  it('refuses a name that is not declared, nobody included', () => {
    expect(resolveRunAs('nobody', [{ username: 'build', uid: 1000 }])).toEqual({ ok: false, message: 'run-as "nobody" names no user of environment.accounts.users' });
    expect(resolveRunAs('svc', [{ username: 'svc' }])).toMatchObject({ ok: false });
  });
});
