import type { ServerDuplexStream } from '@grpc/grpc-js';
import { HodeiError } from '../domain/errors';
import type { Outcome } from '../domain/job-outcome';
import type { JobController } from '../engine/job-controller';
import { KeyedSerialQueue, Turns } from '../engine/serial-queue';
import type { WorkerChannel } from '../engine/worker-channel';
import * as wire from '../protocol';
import { logLineBatchFromWire, specToWire } from './wire-mapping';

type Connection = ServerDuplexStream<wire.WorkerMessage, wire.ServerMessage>;

/**
 * Messages of one worker being handled or waiting to be; past this the stream is paused (back-pressure). Reports
 * about different jobs are handled side by side (see `handleInOrder`), so this also bounds how many of a worker's
 * results are being recorded at once.
 */
const MAX_PENDING_MESSAGES = 32;
/**
 * How many of one worker's job reports are handled at once, the others waiting their turn: enough for its results
 * to share the store's batched statements, few enough that one worker's reports do not fill the store's pool
 * ahead of the scheduling passes and the other workers.
 */
const CONCURRENT_REPORTS = 8;
/** Acks are sent once no message waits, or after this many handled messages (one ack per job covers them). */
const ACK_EVERY_MESSAGES = 8;
/**
 * How long due acks may wait for the messages still being handled (other jobs' reports, handled side by side):
 * a report whose store write is slow does not hold up the acks of the others.
 */
const ACK_DELAY_MS = 5;
/**
 * How long the ack of a run's result may wait for the worker's next RunJob to ride on (a worker that reads RunJob
 * acks), before it goes in a message of its own. Far below the worker's resend timeout (2 s by default).
 */
const RESULT_ACK_HOLD_MS = 50;

/** When a RunJob went out (performance.now()), and when its job was assigned (the engine's clock). */
interface SentRun {
  at: number;
  assignedAt: number | undefined;
}

/** The job a worker's message reports on (a log batch or a result), undefined for the others. */
function reportedJobId(message: wire.WorkerMessage): string | undefined {
  const payload = message.payload;
  return payload?.$case === 'logBatch' || payload?.$case === 'jobFinished' ? payload.value.jobId : undefined;
}

/** A run's key: its job and lease epoch. */
function runKey(jobId: string, epoch: number): string {
  return `${jobId}/${epoch}`;
}

const OUTCOMES: Record<number, Outcome> = {
  [wire.JobOutcome.JOB_OUTCOME_EXITED]: 'EXITED',
  [wire.JobOutcome.JOB_OUTCOME_TIMED_OUT]: 'TIMED_OUT',
  [wire.JobOutcome.JOB_OUTCOME_CANCELLED]: 'CANCELLED',
  [wire.JobOutcome.JOB_OUTCOME_FAILED_TO_START]: 'FAILED_TO_START',
};

/**
 * The worker's channel; `takeHeldAcks` gives the acks a RunJob carries (and forgets them), `sent` records when
 * each RunJob went out (by `runKey`: performance.now() then, and the job's assignment time).
 */
function channelFor(call: Connection, takeHeldAcks: () => wire.Ack[], sent: Map<string, SentRun>, sendAllAcks: () => void): WorkerChannel {
  const send = (payload: wire.ServerMessage['payload']) => {
    if (!call.writableEnded && !call.destroyed) call.write({ payload });
  };
  return {
    runJob: (job, firstLogSeq) => {
      sent.set(runKey(job.id, job.epoch), { at: performance.now(), assignedAt: job.assignedAt });
      send({
        $case: 'runJob',
        value: { jobId: job.id, epoch: job.epoch, attempt: job.attempt, spec: specToWire(job.spec), firstLogSeq, acks: takeHeldAcks() },
      });
    },
    cancelJob: (jobId, graceMs) => send({ $case: 'cancelJob', value: { jobId, graceMs } }),
    drain: () => send({ $case: 'drain', value: {} }),
    close: () => {
      // What is already stored is acknowledged before the stream ends, so the worker does not resend it.
      sendAllAcks();
      if (!call.writableEnded) call.end();
    },
  };
}

/**
 * One worker's bidirectional stream. The first message must be Register; after it, the reports about one job are
 * handled in order (its logs land before its result), those about other jobs meanwhile, and a slow store pauses
 * the stream. Log batches and results are acknowledged once the store accepted them; one the store refused (or that follows a
 * missing batch) is not, and the worker sends it again. A worker that reads RunJob acks gets the ack of a
 * result with its next job when that comes within {@link RESULT_ACK_HOLD_MS}, else alone.
 */
export function handleWorkerConnection(controller: JobController, call: Connection): void {
  /** Acks of results (already stored) waiting for the worker's next RunJob. */
  let heldAcks: wire.Ack[] = [];
  let holdTimer: NodeJS.Timeout | undefined;
  const takeHeldAcks = () => {
    clearTimeout(holdTimer);
    holdTimer = undefined;
    const acks = heldAcks;
    heldAcks = [];
    return acks;
  };
  const sendHeldAcks = () => {
    const acks = takeHeldAcks();
    if (call.writableEnded || call.destroyed) return;
    for (const value of acks) call.write({ payload: { $case: 'ack', value } });
  };
  /** When each RunJob of this connection went out: a start is never recorded before it (see `startedAgo`). */
  const runJobsSent = new Map<string, SentRun>();
  const channel = channelFor(call, takeHeldAcks, runJobsSent, () => {
    sendAcks();
    sendHeldAcks();
  });
  /**
   * When, relative to now, a run reported in a message that arrived at `arrived` started: `agoMs`, what the worker
   * measured when it sent the message plus the time the message waited here, at most the time since this
   * connection sent the run's RunJob; and `notBefore`, the job's assignment time, which the engine also holds the
   * start to (its clock may not be this process's performance clock). For a run this connection did not send (a
   * resend after a reconnection) undefined.
   */
  const startedAgo = (jobId: string, epoch: number, reportedAgoMs: number, arrived: number): { agoMs: number; notBefore?: number } | undefined => {
    const sent = runJobsSent.get(runKey(jobId, epoch));
    if (sent === undefined) return undefined;
    const now = performance.now();
    const agoMs = Math.round(Math.max(0, Math.min(reportedAgoMs + (now - arrived), now - sent.at)));
    return sent.assignedAt === undefined ? { agoMs } : { agoMs, notBefore: sent.assignedAt };
  };
  /** Set by Register: this worker takes acks on RunJob (an older one does not). */
  let readsRunJobAcks = false;
  let workerId: string | undefined;
  let pending = 0;
  /** The messages about no job (Register first, then heartbeats), one after another. */
  let tail = Promise.resolve();
  /** The handling of the stream's first message (its Register): the disconnection is recorded after it. */
  let registration: Promise<void> | undefined;
  /** A job's reports (its log batches, then its result), one after another; other jobs' reports meanwhile. */
  const jobReports = new KeyedSerialQueue();
  /** Turns to handle a job report: {@link CONCURRENT_REPORTS} at once. */
  const reportTurns = new Turns(CONCURRENT_REPORTS);

  const refuse = (error: unknown) => {
    const hodei = HodeiError.isInstance(error) ? error : new HodeiError('INTERNAL', String(error));
    call.write({ payload: { $case: 'refused', value: { code: hodei.code, message: hodei.message } } });
    call.end();
  };
  // Acks due, one per run: a burst of batches (and the result) is answered with one message.
  const dueAcks = new Map<string, wire.Ack>();
  let handledSinceAck = 0;
  const ack = (jobId: string, epoch: number, logSeq: number, finished: boolean) => {
    const key = `${epoch}/${jobId}`;
    const due = dueAcks.get(key);
    dueAcks.set(key, { jobId, epoch, logSeq: Math.max(logSeq, due?.logSeq ?? 0), finished: finished || (due?.finished ?? false) });
  };
  let ackTimer: NodeJS.Timeout | undefined;
  const sendAcks = () => {
    handledSinceAck = 0;
    clearTimeout(ackTimer);
    ackTimer = undefined;
    if (call.writableEnded || call.destroyed) return dueAcks.clear();
    for (const value of dueAcks.values()) {
      if (value.finished && readsRunJobAcks) heldAcks.push(value);
      else call.write({ payload: { $case: 'ack', value } });
    }
    dueAcks.clear();
    if (heldAcks.length > 0 && holdTimer === undefined) {
      holdTimer = setTimeout(sendHeldAcks, RESULT_ACK_HOLD_MS);
      holdTimer.unref();
    }
  };

  const handle = async (message: wire.WorkerMessage, arrived: number): Promise<void> => {
    const payload = message.payload;
    if (!payload) return;
    if (workerId === undefined) {
      if (payload.$case !== 'register') return refuse(new HodeiError('UNAUTHENTICATED', 'the first message must be Register'));
      const register = payload.value;
      try {
        const registered = await controller.registerWorker(
          {
            workerId: register.workerId,
            ...(register.otp ? { otp: register.otp } : {}),
            ...(register.sessionToken ? { sessionToken: register.sessionToken } : {}),
            capacity: register.capacity,
            labels: register.labels,
            holdsPrefetchedJobs: register.holdsPrefetchedJobs,
            ignoresRepeatedRuns: register.ignoresRepeatedRuns,
          },
          channel,
        );
        workerId = register.workerId;
        readsRunJobAcks = register.readsRunJobAcks;
        call.write({ payload: { $case: 'registered', value: { ...registered, readsJobFinishedLines: true, takesReturnedJobs: true } } });
      } catch (error) {
        refuse(error);
      }
      return;
    }
    switch (payload.$case) {
      case 'heartbeat':
        return controller.heartbeat(workerId, payload.value.runningJobIds);
      case 'logBatch': {
        const { jobId, epoch, lines, started, startedAgoMs } = payload.value;
        if (started) {
          // A run this connection did not send: the start is the report's handling.
          const { agoMs, notBefore } = startedAgo(jobId, epoch, startedAgoMs, arrived) ?? { agoMs: 0 };
          await controller.jobStarted(workerId, jobId, epoch, agoMs, notBefore);
        }
        const stored = await controller.appendLogBatch(workerId, jobId, epoch, logLineBatchFromWire(lines));
        if (stored !== undefined) ack(jobId, epoch, stored, false);
        return;
      }
      case 'jobFinished': {
        const finished = payload.value;
        const key = runKey(finished.jobId, finished.epoch);
        // A start that travels with the result: the run's duration before the result (plus the time it waited
        // here), held like a LogBatch's to this connection's sending of the RunJob (when this connection sent it;
        // else the engine takes the duration).
        const startedAgoMs = finished.started ? startedAgo(finished.jobId, finished.epoch, finished.durationMs, arrived)?.agoMs : undefined;
        runJobsSent.delete(key);
        // The run's last lines, when they travel with its result: stored first, like a LogBatch (the job read for
        // their append serves the result). A short job's start travels with its result: recorded together, in one write.
        if (finished.outcome === wire.JobOutcome.JOB_OUTCOME_RETURNED) {
          if (await controller.jobReturned(workerId, finished.jobId, finished.epoch)) ack(finished.jobId, finished.epoch, finished.lastLogSeq, true);
          return;
        }
        const lines = finished.lines !== undefined && wire.logLineCount(finished.lines) > 0 ? logLineBatchFromWire(finished.lines) : undefined;
        const recorded = await controller.jobFinished(
          workerId,
          finished.jobId,
          finished.epoch,
          {
            outcome: OUTCOMES[finished.outcome] ?? 'EXITED',
            exitCode: finished.exitCode,
            signal: finished.signal,
            durationMs: finished.durationMs,
            errorMessage: finished.errorMessage,
            ...(startedAgoMs === undefined ? {} : { startedAgoMs }),
          },
          finished.lastLogSeq,
          finished.started,
          lines,
        );
        if (recorded) ack(finished.jobId, finished.epoch, finished.lastLogSeq, true);
        return;
      }
      case 'register':
        return;
    }
  };

  // A report the store could not record even after its retries: not acknowledged (the worker sends it again),
  // and logged so that an operator sees the job it concerns.
  const unhandled = (message: wire.WorkerMessage, error: unknown) => {
    const payload = message.payload;
    const jobId = reportedJobId(message);
    if (jobId === undefined) return;
    controller.logger.warn(
      { err: error, workerId, jobId, report: payload!.$case },
      `could not record the ${payload!.$case} report of job ${jobId}: ${(error as Error).message}`,
    );
  };
  /**
   * Handles `message` after the messages about no job that came before it (its Register first), and after the
   * earlier reports of its job `jobId` (see `reportedJobId`), if it is about one: a job's lines are stored in order and its result after them,
   * while the reports of other jobs are handled meanwhile, so that the results of a worker's jobs are recorded
   * side by side (on PostgreSQL, in shared statements) rather than one store round trip after another.
   */
  const handleInOrder = (message: wire.WorkerMessage, jobId: string | undefined, arrived: number): Promise<void> => {
    const before = tail;
    const handled =
      jobId === undefined
        ? before.then(() => handle(message, arrived))
        : jobReports.run(jobId, async () => {
            await before;
            await reportTurns.take();
            try {
              await handle(message, arrived);
            } finally {
              reportTurns.give();
            }
          });
    return handled.catch((error: unknown) => unhandled(message, error));
  };
  call.on('data', (message: wire.WorkerMessage) => {
    const arrived = performance.now();
    pending += 1;
    if (pending > MAX_PENDING_MESSAGES) call.pause();
    const jobId = reportedJobId(message);
    const handled = handleInOrder(message, jobId, arrived).finally(() => {
      pending -= 1;
      handledSinceAck += 1;
      if (dueAcks.size > 0 && (pending === 0 || handledSinceAck >= ACK_EVERY_MESSAGES)) sendAcks();
      else if (dueAcks.size > 0 && ackTimer === undefined) {
        ackTimer = setTimeout(sendAcks, ACK_DELAY_MS);
        ackTimer.unref();
      }
      if (pending <= MAX_PENDING_MESSAGES / 2 && call.isPaused()) call.resume();
    });
    if (jobId === undefined) tail = handled;
    registration ??= handled;
  });
  const closed = () => {
    takeHeldAcks(); // the worker resends what was not acknowledged
    // After its Register (it may still be in flight), not after the reports still being recorded: until the
    // engine hears of it, it counts the channel live and may claim jobs for the worker that go nowhere.
    void (registration ?? Promise.resolve())
      .then(async () => {
        if (workerId !== undefined) await controller.workerDisconnected(workerId, channel);
      })
      .catch((error: unknown) => {
        // The store failed (after its retries): the worker is still offered no job here (its channel is gone),
        // and the heartbeat timeout finds it if it does not come back.
        controller.logger.warn({ err: error, workerId }, `could not record the disconnection of worker ${workerId}: ${(error as Error).message}`);
      });
  };
  call.once('end', () => {
    closed();
    channel.close();
  });
  call.once('error', closed);
  call.once('cancelled', closed);
}
