import { performance } from 'node:perf_hooks';
import { ExpectedVersionError, isConflict, type ConcurrencyError, type OperationOptions } from '../event-store/index.js';

/** What one run of a command carries to the next, after it lost a race. */
export interface AttemptState {
  /** The etag of the tip the run started from (set by the strategy's `load`). */
  usedEtag?: string;
  /** The etag of a tip under which the run before lost a race: if still current, the tip is behind the stream. */
  conflictEtag?: string;
  /** A run before lost a race: a missing tip no longer means a new aggregate. */
  conflicted?: boolean;
}

/** What a command decided: a version to answer without storing anything, or what to store and the version it ends at. */
export type Decision<D> = { answer: number } | { store: D; version: number };

/**
 * What a repository gives the command pipeline: its codec, its keys, and where an aggregate's state lives
 * (a tip or the stream). The pipeline runs the steps in order; the strategy knows the formats.
 */
export interface CommandStrategy<C, L, D> {
  /** The stream of the command's aggregate; throws for a command without a usable id. */
  streamOf(command: C): string;
  /** The state a run starts from. */
  load(command: C, attempt: AttemptState, options?: OperationOptions): Promise<L>;
  /**
   * Lifecycle, validation, state guard, evaluation, emit, then the encoding guard: everything that would
   * be stored is encoded first, and what cannot be refuses the command before anything is written.
   */
  decide(command: C, loaded: L, options?: OperationOptions): Decision<D>;
  /** Stores the events (and the tip) in one transactional batch; a lost race is a `ConcurrencyError`. */
  save(command: C, loaded: L, decided: D, options?: OperationOptions): Promise<void>;
  /** Writes the materialized views, best effort. */
  materialize(command: C, loaded: L, decided: D, options?: OperationOptions): Promise<void>;
  /** What a lost race is thrown as once the retry budget is spent. */
  contention(command: C, conflict: ConcurrencyError, attempts: number, elapsedMs: number): Error;
}

/** When a run that lost a race is run again: see `CommandRetryOptions`. */
export interface PipelineRetry {
  maxElapsedMs: number;
  initialDelayMs: number;
  maxDelayMs: number;
  maxAttempts: number;
}

/**
 * The one command pipeline of both repositories (JSON and protosource): commands on one aggregate queue
 * per process (they never race each other), each run loads, decides, saves and materializes through the
 * strategy, and a run that lost a race to another instance is re-run on fresh state after a full-jitter
 * wait, within the retry budget.
 */
export class CommandPipeline<C, L, D> {
  /** Per stream, the end of the queue of this process's commands on it. */
  private readonly lanes = new Map<string, Promise<unknown>>();

  constructor(
    private readonly strategy: CommandStrategy<C, L, D>,
    private readonly retry: PipelineRetry,
  ) {}

  /** Runs the command after this process's earlier commands on the same aggregate; resolves its version. */
  async run(command: C, options?: OperationOptions): Promise<number> {
    return this.exclusive(this.strategy.streamOf(command), () => this.runWithRetry(command, options));
  }

  /**
   * Runs `fn` in the aggregate's queue: after this process's commands (and other `exclusive` calls) on the
   * stream that came before it, saves and materializations included, and before those that come after.
   * An erasure runs here, so no command of this process writes around it.
   */
  exclusive<T>(lane: string, fn: () => Promise<T>): Promise<T> {
    const before = this.lanes.get(lane) ?? Promise.resolve();
    const run = before.then(fn, fn);
    const end = run.then(
      () => undefined,
      () => undefined,
    );
    this.lanes.set(lane, end);
    void end.then(() => {
      if (this.lanes.get(lane) === end) this.lanes.delete(lane);
    });
    return run;
  }

  private async runWithRetry(command: C, options?: OperationOptions): Promise<number> {
    const { maxElapsedMs, initialDelayMs, maxDelayMs, maxAttempts } = this.retry;
    const started = performance.now();
    let ceiling = initialDelayMs;
    const attempt: AttemptState = {};
    for (let n = 1; ; n++) {
      let conflict: ConcurrencyError;
      try {
        return await this.once(command, attempt, options);
      } catch (err) {
        // An expected version that does not hold is the caller's to look at again: never re-run.
        if (!isConflict(err) || err instanceof ExpectedVersionError) throw err;
        conflict = err;
        attempt.conflictEtag = attempt.usedEtag;
        attempt.conflicted = true;
      }
      // Full jitter: each loser waits a random time under a growing ceiling, so racing writers spread out.
      const delay = Math.random() * ceiling;
      // From 1 ms when initialDelayMs is 0: a ceiling of 0 would never grow, re-running at once for the whole budget.
      ceiling = Math.min(maxDelayMs, Math.max(ceiling * 2, 1));
      const elapsed = performance.now() - started;
      if (n >= maxAttempts || elapsed + delay >= maxElapsedMs) throw this.strategy.contention(command, conflict, n, elapsed);
      await new Promise((resolve) => setTimeout(resolve, delay));
      options?.abortSignal?.throwIfAborted();
    }
  }

  private async once(command: C, attempt: AttemptState, options?: OperationOptions): Promise<number> {
    const loaded = await this.strategy.load(command, attempt, options);
    const decision = this.strategy.decide(command, loaded, options);
    if ('answer' in decision) return decision.answer;
    await this.strategy.save(command, loaded, decision.store, options);
    await this.strategy.materialize(command, loaded, decision.store, options);
    return decision.version;
  }
}

/** What a repository gives `readMaterialized`: how to read its document and its stream, and how to rebuild. */
export interface MaterializedReadSteps<V> {
  /** The materialized document, `undefined` when there is none (or it is another type's). */
  document(): Promise<V | undefined>;
  versionOf(view: V): number;
  /** The stream's last version, 0 when it has no events. */
  lastVersion(): Promise<number>;
  /** The state rebuilt from the events. */
  rebuild(): Promise<V>;
  /** Writes the rebuilt state back, never older over newer (best effort). */
  repair(view: V): Promise<void>;
  notFound(): Error;
}

/**
 * The read side shared by both repositories, for aggregates without a tip: the materialized document,
 * never older than the stream. The document and the stream's last version are read at once (one round
 * trip); a document behind the stream (its materialization failed, or its instance died first) or missing
 * gives way to the state rebuilt from the events, which is written back. A document ahead of a stream whose
 * events expired is all there is, and is answered.
 */
export async function readMaterialized<V>(steps: MaterializedReadSteps<V>): Promise<V> {
  const [view, last] = await Promise.all([steps.document(), steps.lastVersion()]);
  if (view !== undefined && steps.versionOf(view) >= last) return view;
  if (last === 0) throw steps.notFound();
  const rebuilt = await steps.rebuild();
  await steps.repair(rebuilt);
  return rebuilt;
}
