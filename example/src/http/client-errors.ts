import { STATUS_CODES, type Server } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * Answers the requests Node's HTTP parser refuses before any route sees them (headers over its 16 KB
 * limit, a malformed request line, a request timeout) with the service's JSON error body, where Node would
 * send a bare status line: 431 for headers too large, 408 for a timeout, 400 otherwise.
 */
export function answerClientErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Nothing to answer on a connection the client already dropped.
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const statusCode =
      err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const error = STATUS_CODES[statusCode] ?? 'Error';
    const message =
      statusCode === 431
        ? 'the request headers are larger than the server takes (16 KB in all)'
        : statusCode === 408
          ? 'the request did not arrive in time'
          : 'the request is not valid HTTP';
    const body = JSON.stringify({ statusCode, error, message });
    socket.end(
      `HTTP/1.1 ${statusCode} ${error}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}
