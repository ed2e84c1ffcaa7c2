// VM sizing and shape: memory and CPU parsing, capping to the host, machine types.
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/errors.ts';
import { hostTscKhz, machineLayout, parseCpu, parseMemory, resolveResources } from '../../../src/runners/qemu/machine.ts';

const host = { cpus: 2, memoryMiB: 8192 };

describe('parseMemory / parseCpu', () => {
  it('reads the usual spellings', () => {
    expect(parseMemory('2048', '--memory')).toBe(2048);
    expect(parseMemory('2G', '--memory')).toBe(2048);
    expect(parseMemory('2Gi', 'x')).toBe(2048);
    expect(parseMemory('1.5GiB', 'x')).toBe(1536);
    expect(parseMemory('512M', 'x')).toBe(512);
    expect(parseCpu('2', 'x')).toBe(2);
    expect(parseCpu('1.5', 'x')).toBe(2);
    expect(parseCpu('500m', 'x')).toBe(1);
  });

  it('names the flag in errors', () => {
    expect(() => parseMemory('lots', '--memory')).toThrow(new UsageError('--memory: "lots" is not a memory size (e.g. 2048M, 4G, 2Gi)'));
    expect(() => parseMemory('10M', '--memory')).toThrow(/too little memory/);
    expect(() => parseCpu('two', '--cpu')).toThrow(/--cpu: "two" is not a CPU count/);
  });
});

describe('resolveResources', () => {
  it('refuses flags beyond the host, but caps package.resources with a note', () => {
    const logs: string[] = [];
    expect(() => resolveResources({ memoryFlag: '64G', resources: {}, host, log: (l) => logs.push(l) })).toThrow(/--memory: 64G is more than this host can give a VM/);
    expect(() => resolveResources({ cpuFlag: '8', resources: {}, host, log: (l) => logs.push(l) })).toThrow(/--cpu: 8 is more than this host's 2 CPUs/);
    const capped = resolveResources({ resources: { cpu: '16', memory: '64Gi' }, host, log: (l) => logs.push(l) });
    expect(capped).toEqual({ cpus: 2, memoryMiB: 8192 - 256 });
    expect(logs).toEqual([
      'package.resources.memory 64Gi capped to 7936 MiB (this host\'s limit)',
      'package.resources.cpu 16 capped to 2 (this host\'s CPUs)',
    ]);
  });

  it('prefers flags over package.resources, and defaults to 2 GiB and every CPU', () => {
    expect(resolveResources({ cpuFlag: '1', memoryFlag: '1G', resources: { cpu: '2', memory: '4G' }, host, log: () => undefined })).toEqual({ cpus: 1, memoryMiB: 1024 });
    expect(resolveResources({ resources: {}, host, log: () => undefined })).toEqual({ cpus: 2, memoryMiB: 2048 });
  });
});

describe('machineLayout', () => {
  it('gives microvm the host TSC rate and MMIO devices; q35 PCI devices', async () => {
    const micro = machineLayout('microvm', 2_596_124);
    expect(micro.kernelArgs).toEqual(['tsc_early_khz=2596124']);
    expect(micro.netDevice).toBe('virtio-net-device');
    expect(micro.modules.map((m) => m.name)).toContain('virtio_mmio');
    const q35 = machineLayout('q35', undefined);
    expect(q35.args).toEqual(['-M', 'q35']);
    expect(q35.blockDevice).toBe('virtio-blk-pci');
    expect(q35.modules.map((m) => m.name)).toContain('virtio_pci');
    const khz = await hostTscKhz();
    // This host (x86 with constant_tsc) has a known rate; it is a plausible clock.
    expect(khz).toBeGreaterThan(500_000);
    expect(khz).toBeLessThan(10_000_000);
  });
});
