// Typed errors. Every error a user can cause carries where it came from (file:line:col and the key path,
// or the flag), so the CLI can print it once, cleanly, without a stack trace.

export interface SourceLocation {
  file: string;
  line: number;
  col: number;
}

export function formatLocation(loc: SourceLocation): string {
  return loc.line > 0 ? `${loc.file}:${loc.line}:${loc.col}` : loc.file;
}

/** Base class for every error the CLI reports as a plain message (exit code 1). */
export class BuilderError extends Error {
  override name = 'BuilderError';
  /** Extra lines printed under the message (e.g. the tail of a failed step's output). */
  details: string[] = [];
  constructor(message: string, options?: { cause?: unknown; details?: string[] }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    if (options?.details) this.details = options.details;
  }
}

/** Wrong flags or arguments: exit code 2. */
export class UsageError extends BuilderError {
  override name = 'UsageError';
}

/** One problem in a recipe or other YAML input, at a location. */
export interface ConfigProblem {
  location: SourceLocation;
  /** Key path, e.g. `package.dependencies.runtime[2]`. */
  path: string;
  message: string;
}

/** All problems found in one file, reported together. */
export class ConfigError extends BuilderError {
  override name = 'ConfigError';
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    super(
      problems
        .map((p) => `${formatLocation(p.location)}: ${p.path ? `${p.path}: ` : ''}${p.message}`)
        .join('\n'),
    );
    this.problems = problems;
  }
}

/** A host tool the operation needs is missing or unusable. */
export class MissingToolError extends BuilderError {
  override name = 'MissingToolError';
}

/** A pipeline step exited non-zero. */
export class StepFailedError extends BuilderError {
  override name = 'StepFailedError';
  readonly exitCode: number;
  constructor(message: string, exitCode: number, details: string[]) {
    super(message, { details });
    this.exitCode = exitCode;
  }
}

/** Malformed, tampered or untrusted package/index data. */
export class PackageFormatError extends BuilderError {
  override name = 'PackageFormatError';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
