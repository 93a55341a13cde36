import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** What `stopGracefully` needs of the application: Nest's `close()`, which runs the shutdown hooks. */
export interface Closable {
  close(): Promise<void>;
}

/** How a graceful stop went: how many requests were still running when the drain time ran out. */
export interface DrainResult {
  /** Requests cut because they outlasted the drain time (0 in a clean stop). */
  cut: number;
}

/** How long after the signal a connection that has not sent its first request yet is waited for. */
const FIRST_REQUEST_GRACE_MS = 1_000;

interface Connection {
  /** Requests of this connection not answered yet. */
  active: number;
  /** Whether it has sent a request: without one, its request may still be in the socket's buffer, unread. */
  served: boolean;
}

/** Marks an answer `Connection: close`, or, when its head is already sent, closes its connection after it. */
function closeAfter(res: ServerResponse): void {
  if (!res.headersSent) res.setHeader('Connection', 'close');
  else res.shouldKeepAlive = false;
}

/**
 * Tracks the connections of `server` and the requests in flight on them, and marks every answer
 * `Connection: close` once draining starts.
 */
export class InFlightRequests {
  private count = 0;
  private cut = 0;
  private draining = false;
  private readonly connections = new Map<Socket, Connection>();
  private readonly responses = new Set<ServerResponse>();

  constructor(private readonly server: Server) {
    server.on('connection', (socket: Socket) => {
      this.connections.set(socket, { active: 0, served: false });
      socket.once('close', () => this.connections.delete(socket));
    });
    // First of the request listeners, so the header is set before any route can answer.
    server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
      const connection = this.connections.get(req.socket);
      this.count++;
      if (connection) {
        connection.active++;
        connection.served = true;
      }
      if (this.draining) closeAfter(res);
      this.responses.add(res);
      res.once('close', () => {
        this.responses.delete(res);
        this.count--;
        if (connection) connection.active--;
      });
    });
  }

  /** Requests in flight now. */
  get size(): number {
    return this.count;
  }

  /**
   * Stops accepting connections, closes idle keep-alive ones at once, lets the requests in flight finish
   * (their connections close after the answer) for at most `drainMs`, then cuts what is left. A connection
   * accepted but whose first request is not read yet (a busy service reads it a moment later) is given
   * up to a second to send it, within `drainMs`: closing it at once would reset a request the client sent.
   */
  async drain(drainMs: number): Promise<DrainResult> {
    this.draining = true;
    // The requests already in flight too: their answers must not invite the client to send another.
    for (const res of this.responses) closeAfter(res);
    const started = Date.now();
    // After the rest of this turn of the event loop: connections the kernel has already completed (their
    // requests sent) are accepted first, rather than reset with the listening socket.
    await new Promise((resolve) => setImmediate(resolve));
    this.server.close();
    for (const [socket, connection] of this.connections) if (connection.served && connection.active === 0) socket.destroy();
    for (;;) {
      const elapsed = Date.now() - started;
      const waitingFirst = [...this.connections.values()].some((c) => !c.served);
      if (elapsed >= drainMs || (this.count === 0 && (!waitingFirst || elapsed >= FIRST_REQUEST_GRACE_MS))) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // Counted across drains: a second signal's drain(0) cuts what the first drain was waiting for.
    this.cut += this.count;
    // What outlasted the drain time, and any connection left open (one that never sent a whole request).
    this.server.closeAllConnections();
    for (const socket of this.connections.keys()) socket.destroy();
    return { cut: this.cut };
  }
}

/**
 * How long after the first signal a repeated one counts as the same: Ctrl-C under `npm start` signals the
 * whole process group, so node gets SIGINT from the terminal and again from npm, which forwards it.
 */
export const REPEATED_SIGNAL_WINDOW_MS = 1_000;

/**
 * Graceful shutdown on `signals`: stop accepting, drain the requests in flight for at most `drainMs`
 * (idle keep-alive connections closed at once), and only then close the application (its shutdown hooks
 * stop the subscribers and dispose of Cosmos DB), then exit 0. A signal within `REPEATED_SIGNAL_WINDOW_MS`
 * of the first is the same stop (npm's forwarded copy of a Ctrl-C); one later, a deliberate second Ctrl-C,
 * cuts the drain short.
 * Used instead of Nest's `enableShutdownHooks`, which closes everything at once, and of
 * `forceCloseConnections`, which closes busy connections as well as idle ones.
 */
export function stopGracefully(
  app: Closable,
  requests: InFlightRequests,
  { drainMs, signals = ['SIGINT', 'SIGTERM'], log }: { drainMs: number; signals?: NodeJS.Signals[]; log: (message: string) => void },
): void {
  let firstAt: number | undefined;
  let cut = false;
  const stop = async (signal: NodeJS.Signals): Promise<unknown> => {
    if (firstAt !== undefined) {
      if (Date.now() - firstAt < REPEATED_SIGNAL_WINDOW_MS) {
        log(`${signal} again within ${REPEATED_SIGNAL_WINDOW_MS} ms of the first: the same stop (npm forwards a Ctrl-C), the drain goes on`);
        return undefined;
      }
      if (cut) return undefined;
      cut = true;
      log(`${signal} again: cutting the drain short`);
      // A deliberate second signal shortens the drain to nothing: what is in flight is cut now.
      return requests.drain(0);
    }
    firstAt = Date.now();
    log(`${signal}: no new connections; draining ${requests.size} request(s) in flight, for at most ${drainMs} ms`);
    const result = await requests.drain(drainMs);
    log(result.cut === 0 ? 'every request in flight was answered' : `${result.cut} request(s) outlasted the drain time and were cut`);
    await app.close();
    process.exit(0);
  };
  for (const signal of signals) process.on(signal, (s: NodeJS.Signals) => void stop(s));
}
