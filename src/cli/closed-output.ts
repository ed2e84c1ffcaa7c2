// `builder … | head`: once the reader has gone, output is dropped quietly instead of ending in an EPIPE stack
// trace. The command itself goes on to its normal end, so a build still cleans up after itself.

const GONE = new Set(['EPIPE', 'ERR_STREAM_DESTROYED']);

export function dropOutputOnceClosed(stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === undefined || !GONE.has(err.code)) throw err;
  });
}
