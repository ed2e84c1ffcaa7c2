// Reading the hook's NDJSON: event lines recorded from a real VM, malformed lines, chunk boundaries, the 50 MiB cap.
import { describe, expect, it } from 'vitest';
import { parseEventLine } from '../../src/observe/events.ts';
import { EventLineReader, MAX_EVENTS_BYTES, readEventStream } from '../../src/observe/ndjson.ts';
import { fixture, wireExec, wireNet } from './helpers.ts';

const clock = { bootEpochMs: Date.UTC(2026, 0, 2, 3, 4, 5) };

async function* chunks(text: string, size: number): AsyncGenerator<Buffer> {
  const data = Buffer.from(text);
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

describe('event lines', () => {
  it('parses every line the hook wrote in a real VM', async () => {
    const text = await fixture('scenario.events.json');
    const result = await readEventStream(chunks(text, 4096), { clock });
    const lines = text.split('\n').filter((l) => l !== '');
    expect(result).toMatchObject({ malformed: 0, truncated: false, lines: lines.length, bytes: Buffer.byteLength(text) });
    expect(result.events).toHaveLength(lines.length);
    const connect = result.events.find((e) => e.type === 'net' && e.function === 'tcp_connect' && e.outcome === 'established' && e.dst_addr === '10.0.2.2');
    expect(connect).toMatchObject({ protocol: 'tcp', family: 'ipv4', process: 'busybox', uid: 1000, scope: 'build' });
    expect(result.events.some((e) => e.type === 'exec' && e.argv_complete === false)).toBe(true);
  });

  it('turns the boot clock into wall-clock time', () => {
    const e = parseEventLine(JSON.stringify(wireExec({ time: 2.5 })), clock);
    expect(e).toMatchObject({ uptime: 2.5, timestamp: '2026-01-02T03:04:07.500Z' });
  });

  it('rejects lines that are not well-formed events', () => {
    const bad = [
      'not json',
      '[1,2]',
      '"exec"',
      JSON.stringify({ ...wireExec(), type: 'fork' }),
      JSON.stringify({ ...wireExec(), time: -1 }),
      JSON.stringify({ ...wireExec(), pid: '100' }),
      JSON.stringify({ ...wireExec(), pid: 1.5 }),
      JSON.stringify({ ...wireExec(), scope: 'user' }),
      JSON.stringify({ ...wireExec(), argv: ['a', 1] }),
      JSON.stringify({ ...wireExec(), argv_complete: undefined }),
      JSON.stringify({ ...wireNet(), dst_port: 70000 }),
      JSON.stringify({ ...wireNet(), dst_addr: '' }),
      JSON.stringify({ ...wireNet(), function: 'tcp_send' }),
      JSON.stringify({ ...wireNet(), protocol: 'udp' }),
      JSON.stringify({ ...wireNet(), outcome: undefined }),
      JSON.stringify({ ...wireNet({ function: 'tcp_close', outcome: undefined }) }),
      JSON.stringify({ type: 'lost', time: 1, cpu: 0, count: 0 }),
    ];
    for (const line of bad) expect(parseEventLine(line, clock), line).toBeNull();
    expect(parseEventLine(JSON.stringify(wireNet({ function: 'tcp_close', outcome: undefined, established: false })), clock)).not.toBeNull();
    expect(parseEventLine(JSON.stringify({ type: 'lost', time: 1, cpu: 0, count: 3 }), clock)).toMatchObject({ type: 'lost', count: 3 });
  });

  it('skips and counts malformed lines, keeping a few as samples, and reads the rest', async () => {
    const good = JSON.stringify(wireExec());
    const text = [good, '{"type":"exec"', good, 'garbage', '', JSON.stringify({ type: 'surprise', time: 1 }), 'x'.repeat(500), good].join('\n');
    const result = await readEventStream(chunks(text, 7), { clock });
    expect(result.events).toHaveLength(3);
    expect(result.malformed).toBe(4);
    expect(result.lines).toBe(7);
    expect(result.malformedSamples).toEqual(['{"type":"exec"', 'garbage', '{"type":"surprise","time":1}']);
  });

  it('gives the same result whatever the chunk boundaries, including inside UTF-8 sequences', async () => {
    const text = `${[wireExec({ filename: '/usr/bin/ünïcødé' }), wireNet(), wireExec({ argv: ['é', '€', '𝄞'] })].map((e) => JSON.stringify(e)).join('\n')}\n`;
    const whole = await readEventStream(chunks(text, text.length), { clock });
    for (const size of [1, 2, 3, 5, 64]) {
      expect(await readEventStream(chunks(text, size), { clock })).toEqual(whole);
    }
    expect(whole.events[0]).toMatchObject({ filename: '/usr/bin/ünïcødé' });
  });

  it('counts a line too long to be an event as malformed without holding it', async () => {
    const reader = new EventLineReader({ clock });
    reader.push(Buffer.from('{"type":"exec","filename":"'));
    for (let i = 0; i < 40; i++) reader.push(Buffer.alloc(64 * 1024, 0x61));
    reader.push(Buffer.from(`"}\n${JSON.stringify(wireNet())}\n`));
    const result = reader.finish();
    expect(result).toMatchObject({ malformed: 1, lines: 2 });
    expect(result.events).toHaveLength(1);
  });
});

describe('the size cap', () => {
  it('takes exactly the cap, reports the rest as truncated and drops the line cut in half', async () => {
    const line = `${JSON.stringify(wireExec())}\n`;
    const max = line.length * 10 + 5;
    const result = await readEventStream(chunks(line.repeat(20), 33), { clock, maxBytes: max });
    expect(result).toMatchObject({ bytes: max, truncated: true, malformed: 0, lines: 10 });
    expect(result.events).toHaveLength(10);
  });

  it('is not truncated at exactly the cap', async () => {
    const line = `${JSON.stringify(wireExec())}\n`;
    const result = await readEventStream(chunks(line.repeat(10), 100), { clock, maxBytes: line.length * 10 });
    expect(result).toMatchObject({ truncated: false, lines: 10 });
  });

  it('stops at 50 MiB by default', async () => {
    const line = Buffer.from(`${JSON.stringify(wireNet())}\n`);
    const block = Buffer.concat(Array.from({ length: Math.floor((1 << 20) / line.length) }, () => line));
    let produced = 0;
    async function* many(): AsyncGenerator<Buffer> {
      // 60 MiB offered; the reader must stop asking at 50.
      while (produced < 60 * 1024 * 1024) {
        produced += block.length;
        yield block;
      }
    }
    const result = await readEventStream(many(), { clock });
    expect(result.truncated).toBe(true);
    expect(result.bytes).toBe(MAX_EVENTS_BYTES);
    expect(result.events).toHaveLength(Math.floor(MAX_EVENTS_BYTES / line.length));
    expect(result.malformed).toBe(0);
    expect(produced).toBeLessThan(52 * 1024 * 1024);
  });
});
