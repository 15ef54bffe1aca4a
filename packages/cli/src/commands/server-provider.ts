import { HodeiError, type Provider } from '@hodei/core';
import { DockerProvider } from '@hodei/provider-docker';
import { ProcessProvider } from '@hodei/provider-process';
import { parseIntegerFlag, parseKeyValues } from '../options';

export const PROVIDERS = ['process', 'docker'] as const;

export interface ProviderFlags {
  provider: string;
  maxWorkers?: string;
  /** `--worker-label K=V`, repeatable: labels every worker carries (jobs with `--label` run only on such workers). */
  workerLabel?: string[];
  dockerImage?: string;
  dockerNetwork: string;
  workerMemory?: string;
  workerCpus?: string;
}

/** Rewrites a provider option error so it names the flag the user typed. */
function asFlagError(error: unknown, fields: Record<string, string>): unknown {
  if (HodeiError.isInstance(error) && error.field && fields[error.field]) {
    const message = error.message.replace(new RegExp(`^${error.field}: `), '');
    return new HodeiError('INVALID_ARGUMENT', message, { field: fields[error.field], cause: error });
  }
  return error;
}

/**
 * The provider `hodei server` runs workers with. For Docker the engine is pinged first: an unreachable
 * engine is a usage error (exit 2) at start, not a job that never runs.
 */
export async function createServerProvider(flags: ProviderFlags): Promise<Provider> {
  const maxWorkers = flags.maxWorkers === undefined ? undefined : parseIntegerFlag(flags.maxWorkers, '--max-workers', 1, 10_000);
  const labels = parseKeyValues(flags.workerLabel, '--worker-label', 'label');
  if (flags.provider !== 'docker') {
    // A Docker flag without Docker would be ignored: the user expects containers (or limits) they would not get.
    const dockerOnly = [
      ['--docker-image', flags.dockerImage],
      ['--worker-memory', flags.workerMemory],
      ['--worker-cpus', flags.workerCpus],
    ] as const;
    const given = dockerOnly.find(([, value]) => value !== undefined);
    if (given) throw new HodeiError('INVALID_ARGUMENT', 'needs --provider docker (the process provider runs workers as local processes)', { field: given[0] });
    return new ProcessProvider({ labels, ...(maxWorkers === undefined ? {} : { maxWorkers }) });
  }
  if (!flags.dockerImage) {
    throw new HodeiError('INVALID_ARGUMENT', 'is required with --provider docker (build one with npm run docker:image)', {
      field: '--docker-image',
    });
  }
  let provider: DockerProvider;
  try {
    provider = new DockerProvider({
      image: flags.dockerImage,
      networkMode: flags.dockerNetwork,
      labels,
      ...(maxWorkers === undefined ? {} : { maxWorkers }),
      ...(flags.workerMemory === undefined ? {} : { memory: flags.workerMemory }),
      ...(flags.workerCpus === undefined ? {} : { cpus: Number(flags.workerCpus) }),
    });
  } catch (error) {
    throw asFlagError(error, { image: '--docker-image', networkMode: '--docker-network', memory: '--worker-memory', cpus: '--worker-cpus' });
  }
  try {
    await provider.ping();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new HodeiError('INVALID_ARGUMENT', reason, { field: '--provider docker', cause: error });
  }
  return provider;
}
