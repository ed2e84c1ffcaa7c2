// Which environment a build uses: the hermetic root provider whenever the recipe or the command line declares
// something to build a root from, the host otherwise (or when `--base host` asks for it). The decision needs
// only the spec, so it is made per build inside prepare(), after the recipe is compiled.
import { isBaseEntry } from './base.ts';
import { HostProvider } from './host.ts';
import type { EnvironmentProvider, EnvironmentSpec, PreparedRoot } from './provider.ts';
import { RootProvider, type RootProviderOptions } from './root-provider.ts';

export interface EnvironmentChoice {
  /** `--base`, when given. */
  base?: string;
  /** The recipe's repositories plus `--repository-append`. */
  repositories: readonly string[];
}

/** `host` or `root`, with the reason, for logs and tests. */
export function environmentKind(choice: EnvironmentChoice): { kind: 'host' | 'root'; reason: string } {
  if (choice.base !== undefined) {
    return choice.base.trim() === 'host'
      ? { kind: 'host', reason: '--base host' }
      : { kind: 'root', reason: `--base ${choice.base}` };
  }
  const baseEntry = choice.repositories.find(isBaseEntry);
  if (baseEntry !== undefined) return { kind: 'root', reason: `base ${baseEntry} in the repositories` };
  if (choice.repositories.length > 0) return { kind: 'root', reason: 'apk repositories declared' };
  return { kind: 'host', reason: 'no base and no repositories declared' };
}

/** Delegates each prepare() to the host or the root provider, as environmentKind() decides for the spec. */
export class SelectingProvider implements EnvironmentProvider {
  readonly name = 'auto';
  readonly host: HostProvider;
  readonly root: RootProvider;

  constructor(options: RootProviderOptions = {}) {
    this.host = new HostProvider();
    this.root = new RootProvider(options);
  }

  prepare(spec: EnvironmentSpec, log: (line: string) => void, chatter?: (line: string) => void, signal?: AbortSignal): Promise<PreparedRoot> {
    const { kind, reason } = environmentKind({ base: spec.base, repositories: spec.repositories });
    log(`environment: ${kind === 'host' ? 'host, not hermetic' : 'hermetic root'} (${reason})`);
    return kind === 'host' ? this.host.prepare(spec, log) : this.root.prepare(spec, log, chatter, signal);
  }
}
