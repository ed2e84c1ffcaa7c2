// Helpers for commander options shared by several commands.

/** Accumulates a repeatable option: `--x a --x b` → ['a', 'b']. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
