/**
 * Workers as Docker containers.
 * @packageDocumentation
 */
export { DockerProvider, createDockerProvider, containerNameOf, MANAGED_LABEL, WORKER_ID_LABEL, PROVIDER_LABEL } from './docker-provider';
export { parseMemory, resolveDockerProviderOptions } from './docker-provider-options';
export type { DockerProviderOptions, PullPolicy, ResolvedDockerProviderOptions } from './docker-provider-options';
