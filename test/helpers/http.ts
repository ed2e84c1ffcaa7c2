import { createServer, type RequestListener } from 'node:http';
import { afterAll, beforeAll } from 'vitest';

/** An HTTP server on 127.0.0.1 for the tests of one file; `url()` is its base URL once started. */
export function useHttpServer(handler: RequestListener): { url: () => string } {
  const server = createServer(handler);
  let base = '';
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  return { url: () => base };
}
