import { JOB_STATES, WORKER_STATES, type EngineObserver, type Job, type JobState, type Store } from '@hodei/core';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The engine's metrics: an EngineObserver that counts, plus gauges read from the store when scraped. */
export interface PrometheusMetrics {
  observer: EngineObserver;
  registry: Registry;
}

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

export function createPrometheusMetrics(store: Store): PrometheusMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'hodei_process_' });

  new Gauge({
    name: 'hodei_jobs',
    help: 'Jobs in the store by state.',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      // Counted by the store where it can (PostgreSQL: one GROUP BY, no job read); else from every job.
      const stored = store.countJobsByState ? await store.countJobsByState() : countStates(await store.listJobs({ limit: Number.MAX_SAFE_INTEGER }));
      for (const state of JOB_STATES) this.set({ state }, stored[state] ?? 0);
    },
  });
  new Gauge({
    name: 'hodei_workers',
    help: 'Workers by state and provider.',
    labelNames: ['state', 'provider'],
    registers: [registry],
    async collect() {
      this.reset();
      const workers = await store.listWorkers();
      const providers = new Set(workers.map((worker) => worker.provider));
      for (const provider of providers) for (const state of WORKER_STATES) this.set({ state, provider }, 0);
      for (const worker of workers) this.inc({ state: worker.state, provider: worker.provider });
    },
  });
  const queueToStart = new Histogram({
    name: 'hodei_job_queue_to_start_seconds',
    help: 'From queueing a job to its start on a worker.',
    buckets: SECONDS,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'hodei_job_duration_seconds',
    help: 'Run time of finished jobs, by final state.',
    labelNames: ['state'],
    buckets: SECONDS,
    registers: [registry],
  });
  const finished = new Counter({ name: 'hodei_jobs_finished_total', help: 'Jobs finished, by final state.', labelNames: ['state'], registers: [registry] });
  const queued = new Counter({ name: 'hodei_jobs_queued_total', help: 'Jobs queued.', registers: [registry] });
  const provisioned = new Counter({ name: 'hodei_workers_provisioned_total', help: 'Workers asked of a provider.', labelNames: ['provider'], registers: [registry] });
  const provisioningFailures = new Counter({
    name: 'hodei_provisioning_failures_total',
    help: 'Workers that failed to start, by provider.',
    labelNames: ['provider'],
    registers: [registry],
  });
  const logLines = new Counter({ name: 'hodei_log_lines_total', help: 'Log lines stored.', registers: [registry] });
  const logBytes = new Counter({ name: 'hodei_log_bytes_total', help: 'Characters of log text stored.', registers: [registry] });

  return {
    registry,
    observer: {
      jobQueued: () => queued.inc(),
      jobStarted: (_job, queueToStartMs) => queueToStart.observe(queueToStartMs / 1000),
      jobFinished: (job) => {
        finished.inc({ state: job.state });
        if (job.durationMs !== undefined) duration.observe({ state: job.state }, job.durationMs / 1000);
      },
      workerProvisioned: (provider) => provisioned.inc({ provider }),
      provisioningFailed: (provider) => provisioningFailures.inc({ provider }),
      logLines: (count, characters) => {
        logLines.inc(count);
        logBytes.inc(characters);
      },
    },
  };
}

/** How many of `jobs` are in each state. */
function countStates(jobs: readonly Job[]): Partial<Record<JobState, number>> {
  const counts: Partial<Record<JobState, number>> = {};
  for (const job of jobs) counts[job.state] = (counts[job.state] ?? 0) + 1;
  return counts;
}
