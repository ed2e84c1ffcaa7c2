// Architecture names as recipes see them (`build.arch`, `build.goarch`, `host.triplet.*`).

export interface ArchInfo {
  arch: string;
  goarch: string;
  gnuTriplet: string;
  rustTriplet: string;
}

const ARCHES: Record<string, ArchInfo> = {
  x86_64: { arch: 'x86_64', goarch: 'amd64', gnuTriplet: 'x86_64-pc-linux-gnu', rustTriplet: 'x86_64-unknown-linux-gnu' },
  aarch64: { arch: 'aarch64', goarch: 'arm64', gnuTriplet: 'aarch64-unknown-linux-gnu', rustTriplet: 'aarch64-unknown-linux-gnu' },
};
const ALIASES: Record<string, string> = { amd64: 'x86_64', arm64: 'aarch64' };

export function archInfo(name: string): ArchInfo | undefined {
  return ARCHES[ALIASES[name] ?? name];
}

export function knownArches(): string[] {
  return Object.keys(ARCHES);
}

/** Node's names for CPU architectures → apk's. */
const NODE_TO_APK_ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ia32: 'x86', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/** This machine's architecture, as apk and recipes name it. */
export function hostArch(): string {
  return NODE_TO_APK_ARCH[process.arch] ?? process.arch;
}
