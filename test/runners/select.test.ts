import { describe, expect, it } from 'vitest';
import { BuilderError, MissingToolError, UsageError } from '../../src/errors.ts';
import type { Runner, Usability } from '../../src/runners/runner.ts';
import { selectRunner } from '../../src/runners/select.ts';

/** A runner that only answers testUsability(), counting how often it was asked. */
class FakeRunner implements Runner {
  probes = 0;
  readonly name: string;
  private readonly usability: Usability;
  constructor(name: string, usability: Usability) {
    this.name = name;
    this.usability = usability;
  }
  async testUsability(): Promise<Usability> {
    this.probes++;
    return this.usability;
  }
  async start(): Promise<void> {
    throw new Error('not used');
  }
  async run(): Promise<number> {
    throw new Error('not used');
  }
  async workspaceTar(): Promise<null> {
    return null;
  }
  async releaseData(): Promise<string> {
    return '';
  }
  async terminate(): Promise<void> {}
}

const usable = (name: string) => new FakeRunner(name, { usable: true });
const unusable = (name: string, reason: string) => new FakeRunner(name, { usable: false, reason });

describe('selectRunner', () => {
  it('auto picks the first usable runner in order, without probing the rest', async () => {
    const bwrap = usable('bubblewrap');
    const qemu = usable('qemu');
    expect(await selectRunner('auto', [bwrap, qemu])).toBe(bwrap);
    expect(qemu.probes).toBe(0);
  });

  it('auto skips unusable runners', async () => {
    const bwrap = unusable('bubblewrap', 'bwrap is not installed');
    const qemu = usable('qemu');
    expect(await selectRunner('auto', [bwrap, qemu])).toBe(qemu);
    expect(bwrap.probes).toBe(1);
  });

  it('auto with nothing usable reports every reason', async () => {
    const err = await selectRunner('auto', [unusable('bubblewrap', 'no bwrap'), unusable('qemu', 'no kernel')]).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MissingToolError);
    expect((err as MissingToolError).details).toEqual(['bubblewrap: no bwrap', 'qemu: no kernel']);
    await expect(selectRunner('auto', [])).rejects.toThrow(BuilderError);
  });

  it('returns a named runner that is usable, even when it is not the first', async () => {
    const qemu = usable('qemu');
    expect(await selectRunner('qemu', [usable('bubblewrap'), qemu])).toBe(qemu);
  });

  it('reports why a named runner is unusable, naming the flag', async () => {
    const err = await selectRunner('bubblewrap', [unusable('bubblewrap', 'bwrap is not installed (apt-get install bubblewrap)'), usable('qemu')], '--sandbox').catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MissingToolError);
    expect((err as Error).message).toBe('--sandbox bubblewrap: bwrap is not installed (apt-get install bubblewrap)');
  });

  it('rejects an unknown name as a usage error listing the valid ones', async () => {
    const err = await selectRunner('docker', [usable('bubblewrap')]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toBe('--runner: unknown runner "docker" (valid: bubblewrap, qemu, auto)');
  });

  it('reports a known runner that this build was not given', async () => {
    const err = await selectRunner('qemu', [usable('bubblewrap')]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuilderError);
    expect(err).not.toBeInstanceOf(UsageError);
    expect((err as Error).message).toContain('available: bubblewrap');
  });
});
