// Plain-data types that cross between modules of one stage and the modules that sequence it. They live here,
// importing nothing, so a sequencer (build.ts, initramfs/source.ts) and the parts it calls can share a type
// without importing each other (no type cycles; see docs/architecture.md).

/** What `build` and `test` add to a recipe's environment from the command line. */
export interface EnvironmentAdditions {
  /** `--base`: overrides a base entry in the recipe's repositories. */
  base?: string;
  repositoryAppend?: string[];
  keyringAppend?: string[];
  packageAppend?: string[];
  ignoreSignatures?: boolean;
}

/** What an initramfs source put into the tree for the assembly step; paths are relative to the tree. */
export interface InitramfsContents {
  /** The static busybox program (any name: it becomes /bin/busybox in the archive). */
  busybox: string;
  /** The dropbear SSH server program. */
  sshServer: string;
  /**
   * util-linux's setpriv, which applies a step's capability set (bounding set included; busybox's cannot
   * drop the bounding set). Absent: an extra package may still provide usr/bin/setpriv.
   */
  setpriv?: string;
  /** Paths owned by the extra packages themselves (not by their dependencies); directories may be left out. */
  extraFiles: string[];
}
