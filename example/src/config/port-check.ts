import { createServer } from 'node:net';

/** `PORT` cannot be bound: in use by another process, or not allowed to this user. */
export class PortUnavailableError extends Error {
  override readonly name = 'PortUnavailableError';

  constructor(
    readonly port: number,
    readonly code: string,
  ) {
    super(
      code === 'EADDRINUSE'
        ? `PORT ${port} is in use by another process: stop it, or set PORT to a free port`
        : code === 'EACCES'
          ? `PORT ${port} may not be bound by this user (ports below 1024 need privileges): set PORT to another port`
          : `PORT ${port} cannot be bound (${code}): set PORT to another port`,
    );
  }
}

/**
 * Binds `port` as the HTTP server will (every interface) and lets it go again, so that a port in use is
 * reported, naming `PORT`, before anything else starts: the application's subscribers start during
 * `init()`, before `listen()` would find the port taken.
 */
export async function checkPortAvailable(port: number): Promise<void> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', (err: NodeJS.ErrnoException) => reject(new PortUnavailableError(port, err.code ?? 'unknown error')));
    probe.listen(port, () => resolve());
  });
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}
