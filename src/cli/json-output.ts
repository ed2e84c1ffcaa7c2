// `--json`: one JSON document on stdout per command run (logs stay on stderr), `{command, ok, …}`. A failure
// still prints a valid document, `{command, ok: false, error}`, and is then reported and exits as usual.
// docs/json.md describes every shape.
import { BuilderError, ConfigError, errorMessage, formatLocation } from '../errors.ts';

export interface JsonError {
  /** The error class (`ConfigError`, `PackageFormatError`, `UsageError`, …). */
  type: string;
  message: string;
  details: string[];
  /** Recipe problems with their place, for a ConfigError. */
  problems?: { location: string; path: string; message: string }[];
}

export function errorJson(err: unknown): JsonError {
  const base: JsonError = {
    type: err instanceof Error ? err.name : 'Error',
    message: errorMessage(err),
    details: err instanceof BuilderError ? err.details : [],
  };
  if (err instanceof ConfigError) base.problems = err.problems.map((p) => ({ location: formatLocation(p.location), path: p.path, message: p.message }));
  return base;
}

export function writeJson(doc: unknown): void {
  process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
}

/**
 * Runs `work` and prints `{command, ok, ...payload}` (ok from the payload, else true); when work throws, prints
 * `{command, ok: false, error}` and rethrows, so the exit status is the one without --json.
 */
export async function printJson(command: string, work: () => Promise<Record<string, unknown>>): Promise<void> {
  let payload: Record<string, unknown>;
  try {
    payload = await work();
  } catch (err) {
    writeJson({ command, ok: false, error: errorJson(err) });
    throw err;
  }
  writeJson({ command, ok: true, ...payload });
}
