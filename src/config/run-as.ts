// `environment.accounts.run-as` → the uid/gid the steps run as. melange's rule (pkg/build: runAsUID): empty
// is the build user, `root` and numbers stand for themselves, any other name must be one of
// `environment.accounts.users` — a user only a base image happens to have (`nobody`) is not enough, since the
// compiled plan cannot know it. The compiler and the root's accounts both resolve through this.

export interface RunAsUser {
  username: string;
  uid?: number;
  gid?: number;
}

export const DEFAULT_RUN_AS = { uid: 1000, gid: 1000 } as const;

export type RunAsResolution = { ok: true; uid: number; gid: number } | { ok: false; message: string };

export function resolveRunAs(runAs: string | undefined, users: readonly RunAsUser[]): RunAsResolution {
  if (runAs === undefined || runAs === '') return { ok: true, ...DEFAULT_RUN_AS };
  if (runAs === 'root') return { ok: true, uid: 0, gid: 0 };
  const numeric = /^\d+$/.test(runAs) ? Number(runAs) : undefined;
  const user = users.find((u) => u.username === runAs) ?? (numeric === undefined ? undefined : users.find((u) => u.uid === numeric));
  if (user !== undefined) {
    const uid = user.uid ?? numeric;
    if (uid === undefined) return { ok: false, message: `run-as "${runAs}" names user "${user.username}", who has no uid` };
    return { ok: true, uid, gid: user.gid ?? uid };
  }
  if (numeric !== undefined && Number.isSafeInteger(numeric)) return { ok: true, uid: numeric, gid: numeric };
  return { ok: false, message: `run-as "${runAs}" names no user of environment.accounts.users` };
}
