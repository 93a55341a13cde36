/*
 * Graceful shutdown of the service as a process (`node example/dist/main.js`, as `npm start` runs it):
 * SIGTERM with 150 commands in flight stops accepting, answers every one of them, and only then stops the
 * subscribers and Cosmos DB; and the drain itself (InFlightRequests) on a plain HTTP server: idle keep-alive
 * connections closed at once, busy ones answered with `Connection: close`, what outlasts the drain time cut.
 * The process test runs the built code: it is built first when older than the sources.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { Agent, createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { InFlightRequests } from '../../example/src/http/graceful-shutdown.js';

const ROOT = resolve(import.meta.dirname, '../..');

function newest(dir: string): number {
  let time = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.ts')) time = Math.max(time, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return time;
}

function builtIsCurrent(): boolean {
  try {
    const built = Math.min(statSync(join(ROOT, 'dist/index.js')).mtimeMs, statSync(join(ROOT, 'example/dist/main.js')).mtimeMs);
    return built >= Math.max(newest(join(ROOT, 'src')), newest(join(ROOT, 'example/src')));
  } catch {
    return false;
  }
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((done) => server.listen(0, done));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

/** One request on its own connection: its status, or the socket error it got instead of an answer. */
function send(port: number, method: string, path: string, body?: unknown): { sent: Promise<void>; answer: Promise<number | string> } {
  let sent!: () => void;
  const sentPromise = new Promise<void>((done) => (sent = done));
  const answer = new Promise<number | string>((done) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = httpRequest(
      { port, host: '127.0.0.1', method, path, agent: false, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {} },
      (res: IncomingMessage) => {
        res.resume();
        res.on('end', () => done(res.statusCode ?? 0));
        res.on('error', (err) => done(`response ${(err as NodeJS.ErrnoException).code ?? err.message}`));
      },
    );
    req.on('error', (err) => {
      sent();
      done((err as NodeJS.ErrnoException).code ?? err.message);
    });
    req.on('finish', () => sent());
    req.end(payload);
  });
  return { sent: sentPromise, answer };
}

/** A raw HTTP/1.1 keep-alive connection: one request at a time, answered with its status or the socket error. */
class RawConnection {
  private pending?: { done: (answer: number | string) => void };
  private buffer = Buffer.alloc(0);

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      const head = this.buffer.indexOf('\r\n\r\n');
      if (head < 0 || !this.pending) return;
      const text = this.buffer.subarray(0, head).toString('latin1');
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text)?.[1] ?? 0);
      if (this.buffer.length < head + 4 + length) return;
      this.buffer = this.buffer.subarray(head + 4 + length);
      const { done } = this.pending;
      this.pending = undefined;
      done(Number(text.split(' ')[1]));
    });
    const fail = (why: string) => {
      const pending = this.pending;
      this.pending = undefined;
      pending?.done(why);
    };
    socket.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message));
    socket.on('close', () => fail('closed without an answer'));
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((done, failed) => {
      const socket = connect(port, '127.0.0.1', () => done(new RawConnection(socket)));
      socket.once('error', failed);
    });
  }

  send(method: string, path: string, body?: unknown): Promise<number | string> {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const headers = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: keep-alive'];
    if (payload) headers.push('Content-Type: application/json', `Content-Length: ${Buffer.byteLength(payload)}`);
    return new Promise((done) => {
      this.pending = { done };
      this.socket.write(`${headers.join('\r\n')}\r\n\r\n${payload}`);
    });
  }
}

describe('the service process on SIGTERM', () => {
  const started: ChildProcess[] = [];
  beforeAll(() => {
    if (!builtIsCurrent()) execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore', timeout: 120_000 });
  }, 130_000);
  afterAll(() => {
    for (const child of started) if (child.exitCode === null) child.kill('SIGKILL');
  });

  /** The built service on a free port, started and listening; `output` is what it has printed so far. */
  async function startProcess(): Promise<{ child: ChildProcess; port: number; output: () => string; exited: Promise<number | null> }> {
    const port = await freePort();
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(COSMOS_|PORT$|SHUTDOWN_|SUBSCRIPTIONS_|ADMIN_TOKEN$|npm_)/.test(name)));
    // A drain long enough for this shared machine: what is checked is that nothing in flight is cut.
    const child = spawn('node', ['example/dist/main.js'], { cwd: ROOT, env: { ...env, PORT: String(port), NO_COLOR: '1', SHUTDOWN_DRAIN_SECONDS: '60' } });
    started.push(child);
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    for (let deadline = Date.now() + 30_000; !/listening on/.test(output); ) {
      if (Date.now() > deadline) throw new Error(`the service did not start: ${output}`);
      await new Promise((done) => setTimeout(done, 100));
    }
    return { child, port, output: () => output, exited };
  }

  /** A POST /orders whose body is sent in two parts: the request is in flight until `finish()`. */
  async function slowUpload(port: number): Promise<{ finish: () => void; answer: Promise<number | string> }> {
    const body = JSON.stringify({ customerId: 'c-slow' });
    const socket = await new Promise<Socket>((done, failed) => {
      const s = connect(port, '127.0.0.1', () => done(s));
      s.once('error', failed);
    });
    let text = '';
    const answer = new Promise<number | string>((done) => {
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (text.includes('\r\n')) done(Number(text.split(' ')[1]));
      });
      socket.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
      socket.on('close', () => done('closed without an answer'));
    });
    socket.write(`POST /orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`);
    return { finish: () => socket.write(body.slice(5)), answer };
  }

  const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

  it('takes a SIGINT repeated within a second (Ctrl-C under npm start: the terminal and npm) as one, and drains', async () => {
    const { child, port, output, exited } = await startProcess();
    const upload = await slowUpload(port);
    await sleep(200); // the service has read the request's head
    child.kill('SIGINT');
    await sleep(50);
    child.kill('SIGINT');
    await sleep(1_500);
    upload.finish();
    expect(await upload.answer).toBe(201);
    expect(await exited).toBe(0);
    expect(output()).toMatch(/SIGINT again within 1000 ms of the first: the same stop/);
    expect(output()).not.toMatch(/cutting the drain short/);
    expect(output()).toMatch(/every request in flight was answered/);
  }, 60_000);

  it('cuts the drain on a deliberate second SIGINT, more than a second after the first', async () => {
    const { child, port, output, exited } = await startProcess();
    const upload = await slowUpload(port);
    await sleep(200);
    child.kill('SIGINT');
    await sleep(1_200);
    child.kill('SIGINT');
    expect(await upload.answer).toBe('closed without an answer');
    expect(await exited).toBe(0);
    expect(output()).toMatch(/SIGINT again: cutting the drain short/);
    expect(output()).toMatch(/1 request\(s\) outlasted the drain time and were cut/);
  }, 60_000);

  it('answers every one of 150 commands in flight, then stops the subscribers and Cosmos DB, and exits 0', async () => {
    const { child, port, output: printed, exited } = await startProcess();

    // 151 keep-alive connections, each accepted and served once (a request sent on a connection still in
    // the kernel's queue when the service stops listening is refused by any server: not what is tested here).
    const connections = await Promise.all(Array.from({ length: 151 }, () => RawConnection.open(port)));
    expect(await Promise.all(connections.map((c) => c.send('GET', '/health/live')))).toEqual(connections.map(() => 200));
    const commands = connections.slice(0, 150).map((c, i) => c.send('POST', '/orders', { customerId: `c-${i % 7}` }));
    // Sent after every command on an open connection: once it is answered, the service has read every command.
    expect(await connections[150].send('GET', '/health/live')).toBe(200);
    child.kill('SIGTERM');
    const answers = await Promise.all(commands);
    expect(answers.filter((a) => a !== 201)).toEqual([]);
    expect(await exited).toBe(0);
    const output = printed();

    const draining = /draining (\d+) request\(s\) in flight/.exec(output);
    expect(draining).not.toBeNull();
    expect(Number(draining![1])).toBeGreaterThanOrEqual(100);
    expect(output).toMatch(/every request in flight was answered/);
    // The shutdown hooks ran after the drain: subscribers and the embedded server stopped last.
    expect(output.indexOf('every request in flight was answered')).toBeLessThan(output.indexOf('closed the embedded Cosmos DB server'));
    // Stopped accepting: a new connection is refused.
    expect(await send(port, 'GET', '/health/live').answer).toBe('ECONNREFUSED');
  }, 120_000);
});

describe('InFlightRequests.drain', () => {
  it('closes idle keep-alive connections at once, answers busy ones with Connection: close, and cuts what outlasts the drain time', async () => {
    const release: Array<() => void> = [];
    const server = createServer((req, res) => {
      if (req.url === '/hang') return; // never answered
      if (req.url === '/slow') return release.push(() => res.end('slow'));
      res.end('quick');
    });
    const requests = new InFlightRequests(server);
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const { port } = server.address() as AddressInfo;
    const agent = new Agent({ keepAlive: true });
    const busyAgent = new Agent({ keepAlive: true });
    // The idle connection on its own keep-alive agent, the busy ones each on a connection of its own.
    const get = (path: string, via: Agent | false = false) =>
      new Promise<{ status: number | string; connection?: string; socketClosed: Promise<void> }>((done) => {
        const req = httpRequest({ port, host: '127.0.0.1', path, agent: via }, (res) => {
          res.resume();
          res.on('end', () => done({ status: res.statusCode!, connection: res.headers.connection, socketClosed: new Promise((c) => req.socket!.once('close', () => c())) }));
        });
        req.on('error', (err) => done({ status: (err as NodeJS.ErrnoException).code ?? err.message, socketClosed: Promise.resolve() }));
        req.end();
      });
    try {
      // A keep-alive connection left idle after its answer.
      const idle = await get('/quick', agent);
      expect(idle.connection).toBe('keep-alive');
      // In flight on a keep-alive connection when the drain starts: answered Connection: close all the same.
      const slow = get('/slow', busyAgent);
      const hang = get('/hang');
      while (requests.size < 2) await new Promise((done) => setTimeout(done, 10));

      const draining = requests.drain(1_000);
      await idle.socketClosed; // closed at once, before the drain ends
      expect(requests.size).toBe(2);
      release.forEach((answer) => answer());
      const answered = await slow;
      expect(answered).toMatchObject({ status: 200, connection: 'close' });
      expect(await draining).toEqual({ cut: 1 });
      expect((await hang).status).toBe('ECONNRESET');
    } finally {
      agent.destroy();
      busyAgent.destroy();
      server.closeAllConnections();
    }
  });
});
