// A real OCI registry (Debian's docker-registry, distribution 2.8) on 127.0.0.1 for one test file, optionally
// behind bearer-token auth served by a small token service of the test's own (RS256 JWTs with an x5c
// certificate the registry trusts). Images are pushed into it by skopeo from OCI layouts the tests write.
import { createSign, randomBytes } from 'node:crypto';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';

export type TokenMode = 'grant' | 'deny';

export interface TestRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  storage: string;
  /** Token requests seen (token auth only). */
  tokenRequests: string[];
  tokenMode: TokenMode;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    resolve(typeof addr === 'object' && addr ? addr.port : 0);
  }));
}

/** Starts the registry in `dir` (config, storage, keys) and waits until /v2/ answers. */
export async function startRegistry(dir: string, options: { token?: boolean } = {}): Promise<TestRegistry> {
  const storage = join(dir, 'storage');
  await mkdir(storage, { recursive: true });
  const port = await freePort();
  const tokenRequests: string[] = [];
  let tokenServer: Server | undefined;
  let auth = '';
  const registry: TestRegistry = { host: `127.0.0.1:${port}`, storage, tokenRequests, tokenMode: 'grant', stop: async () => undefined };
  if (options.token) {
    await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=builder-test-token']);
    const key = await readFile(join(dir, 'key.pem'), 'utf8');
    const der = Buffer.from((await readFile(join(dir, 'cert.pem'), 'utf8')).replace(/-----[^-]+-----|\s/g, ''), 'base64');
    tokenServer = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      tokenRequests.push(url.search);
      const access = registry.tokenMode === 'deny' ? [] : url.searchParams.getAll('scope').map((s) => {
        const [type, name, actions] = s.split(':');
        return { type, name, actions: (actions ?? '').split(',') };
      });
      const now = Math.floor(Date.now() / 1000);
      const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', x5c: [der.toString('base64')] }));
      const claims = b64url(JSON.stringify({ iss: 'builder-test', sub: '', aud: 'test-registry', exp: now + 600, nbf: now - 60, iat: now, jti: randomBytes(8).toString('hex'), access }));
      const signature = createSign('RSA-SHA256').update(`${header}.${claims}`).sign(key);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ token: `${header}.${claims}.${b64url(signature)}` }));
    });
    const tokenPort = await listen(tokenServer);
    auth = [
      'auth:',
      '  token:',
      `    realm: http://127.0.0.1:${tokenPort}/token`,
      '    service: test-registry',
      '    issuer: builder-test',
      `    rootcertbundle: ${join(dir, 'cert.pem')}`,
    ].join('\n');
  }
  const config = join(dir, 'config.yml');
  await writeFile(
    config,
    ['version: 0.1', 'log:', '  level: error', 'storage:', '  filesystem:', `    rootdirectory: ${storage}`, 'http:', `  addr: 127.0.0.1:${port}`, auth, ''].join('\n'),
  );
  const child: ResultPromise = execa('docker-registry', ['serve', config], { reject: false, stdio: ['ignore', 'ignore', 'pipe'] });
  let exited = false;
  void child.then(() => (exited = true));
  registry.stop = async () => {
    child.kill('SIGTERM');
    await child;
    if (tokenServer) await new Promise<void>((r) => tokenServer.close(() => r()));
  };
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://${registry.host}/v2/`).then(() => true, () => false);
    if (ok) break;
    if (i > 100 || exited) {
      await registry.stop();
      throw new Error(`docker-registry did not start: ${String((await child).stderr)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return registry;
}

/** Pushes the layout at `layout` (every platform) to `host/name`. */
export async function pushLayout(layout: string, host: string, name: string): Promise<void> {
  await execa('skopeo', ['copy', '--all', '--quiet', '--dest-tls-verify=false', `oci:${layout}`, `docker://${host}/${name}`], {
    env: { REGISTRY_AUTH_FILE: join(layout, '..', 'auth.json') },
  });
}
