/** The HTTP status of an @azure/cosmos error, read from `code`/`statusCode`: its classes differ between builds. */
export function statusOf(err: unknown): number | undefined {
  if (!err || typeof err !== 'object') return undefined;
  const { code, statusCode } = err as { code?: unknown; statusCode?: unknown };
  if (typeof code === 'number') return code;
  if (typeof statusCode === 'number') return statusCode;
  return undefined;
}

/** The sub-status of an @azure/cosmos error (e.g. 1003 with a 404: the container is missing). */
export function substatusOf(err: unknown): number | undefined {
  if (!err || typeof err !== 'object') return undefined;
  const { substatus } = err as { substatus?: unknown };
  return typeof substatus === 'number' ? substatus : undefined;
}

/**
 * A message for any thrown value: the SDK sometimes throws plain objects (`{ message }`), and some of its
 * errors (a 404, say) carry an empty message, where the status is all there is to say.
 */
export function messageOf(err: unknown): string {
  let message = '';
  if (err instanceof Error) message = err.message;
  else if (err && typeof err === 'object' && 'message' in err) message = String((err as { message: unknown }).message);
  else if (err !== undefined && err !== null) message = String(err);
  if (message !== '') return message;
  const status = statusOf(err);
  return status === undefined ? 'no message from Cosmos DB' : `status ${status}`;
}

/** True when `err` says that `name` itself (not one of its own dependencies) could not be found. */
export function isMissingPackage(err: unknown, name: string): boolean {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  return (
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
    typeof message === 'string' &&
    (message.includes(`'${name}'`) || message.includes(`"${name}"`))
  );
}
