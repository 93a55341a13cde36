import { z } from 'zod';

/** One environment variable that cannot be used as given. */
export interface EnvProblem {
  variable: string;
  /** What is wrong and what to change. Never contains the value of a secret. */
  message: string;
}

/**
 * The environment cannot start the application. The message is one line naming every bad variable; it quotes
 * values only of variables that are not secrets.
 */
export class EnvValidationError extends Error {
  readonly problems: readonly EnvProblem[];

  constructor(problems: readonly EnvProblem[]) {
    super(`invalid environment: ${problems.map((p) => `${p.variable} ${p.message}`).join('; ')}`);
    this.name = 'EnvValidationError';
    this.problems = problems;
  }
}

/** The environment as Node gives it (`process.env`), or any plain record of strings in tests. */
export type Env = Record<string, string | undefined>;

/** The variables the library reads that hold secrets: their values are never logged nor quoted. */
export const SECRET_VARIABLES: readonly string[] = ['COSMOS_KEY'];

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

// A run that could be (part of) an account key, 88 random base64 characters: a key pasted into the wrong
// variable must not end up quoted in the error. Names rarely mix upper case, lower case and digits in 20.
const SECRET_LIKE = /[A-Za-z0-9+/_-]{20,}={0,2}/g;
const looksSecret = (run: string) => /[A-Z]/.test(run) && /[a-z]/.test(run) && /[0-9]/.test(run);

/** A value for an error message, JSON-quoted (so on one line), with anything that could be a secret left out. */
function quote(value: string): string {
  return JSON.stringify(value.replace(SECRET_LIKE, (run) => (looksSecret(run) ? '[not shown]' : run)));
}

const EXAMPLE_URL = 'https://my-account.documents.azure.com:443/';

/**
 * The zod schemas of the kinds of variable the library reads; each issue's message says what a valid value
 * looks like and quotes the value only where it cannot be a secret.
 */
export const envSchemas = {
  /** An `http:` or `https:` URL alone: no credentials, query or fragment. Never quoted: it may hold a secret. */
  url: () =>
    z.string().superRefine((value, ctx) => {
      const fail = (message: string) => ctx.addIssue({ code: 'custom', message });
      if (/accountkey=/i.test(value)) {
        return fail('looks like a connection string: give only the account endpoint URL here and the key in COSMOS_KEY');
      }
      if (!URL.canParse(value)) return fail(`must be a URL such as ${EXAMPLE_URL}`);
      const url = new URL(value);
      if (value.trim() !== value || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
        return fail(`must be an http(s) URL such as ${EXAMPLE_URL}`);
      }
      if (url.username !== '' || url.password !== '') return fail('must not carry credentials in the URL: give the key in COSMOS_KEY');
      // The SDK resolves request paths against the endpoint, dropping any query or fragment: one here would be
      // ignored, and may be a token that should not sit in configuration.
      if (url.search !== '' || url.hash !== '' || /[?#]/.test(value)) {
        return fail('must be the account URL alone, without a query (?) or fragment (#)');
      }
    }),

  /** A base64 secret such as a Cosmos DB account key. Issues never quote the value, nor any part of it. */
  base64Secret: () =>
    z.string().superRefine((value, ctx) => {
      if (/accountendpoint=|accountkey=/i.test(value)) {
        ctx.addIssue({
          code: 'custom',
          message: 'looks like a connection string: give only the account key here and the endpoint in COSMOS_ENDPOINT',
        });
      } else if (!BASE64.test(value)) {
        ctx.addIssue({
          code: 'custom',
          message: 'must be the account key as the Azure portal shows it (standard base64, no spaces or line breaks); the value is not shown',
        });
      }
    }),

  /** A shared secret such as a bearer token: printable ASCII without spaces, at least `minLength` long. Never quoted. */
  secret: ({ minLength }: { minLength: number }) =>
    z.string().refine((value) => value.length >= minLength && /^[\x21-\x7e]+$/.test(value), {
      message: `must be at least ${minLength} printable ASCII characters without spaces; the value is not shown`,
    }),

  /**
   * A Cosmos DB resource id: 1 to 255 characters, none of `/ \ ? #`, no trailing space, not only white space
   * (@azure/cosmos refuses those) and not `.` or `..` (the id is a URL path segment, which they would resolve).
   */
  resourceId: () =>
    z.string().superRefine((value, ctx) => {
      if (
        value.length > 255 ||
        /[/\\?#]/.test(value) ||
        value.endsWith(' ') ||
        /^\s*$/.test(value) ||
        value === '.' ||
        value === '..' ||
        !value.isWellFormed()
      ) {
        ctx.addIssue({
          code: 'custom',
          message:
            `must be a Cosmos DB id of at most 255 characters without / \\ ? #, a trailing space, only white space, ` +
            `or "." or "..", got ${quote(value)}`,
        });
      }
    }),

  /** A decimal integer within `[min, max]` (digits only: no sign, exponent, fraction or spaces). */
  integer: ({ min, max }: { min: number; max: number }) => {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer of at least ${min}` : `an integer from ${min} to ${max}`;
    return z
      .string()
      .transform((value, ctx) => {
        const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
        if (Number.isSafeInteger(n) && n >= min && n <= max) return n;
        ctx.addIssue({ code: 'custom', message: `must be ${range}, got ${quote(value)}` });
        return z.NEVER;
      });
  },

  /** A name shown in logs and lease documents: 1 to 128 letters, digits or `. _ : @ -` (so a pasted key's `+ / =` is refused). */
  name: () =>
    z.string().regex(/^[A-Za-z0-9._:@-]{1,128}$/, { message: 'must be 1 to 128 letters, digits or . _ : @ - (the value is not shown)' }),
};

/**
 * Reads environment variables through zod schemas, recording a problem per bad variable instead of throwing,
 * so one start-up error lists every one of them. A variable set to the empty string is a problem, not
 * "unset": an empty `COSMOS_ENDPOINT` silently switching to an embedded server, or an empty `COSMOS_KEY` to
 * another credential, would hide a typo. A variable holding the value of a secret variable is refused, whatever
 * order they are read in, as its value may be logged (ids are, at start-up) or quoted in a problem.
 *
 * @example
 * const env = new EnvReader(process.env, [...SECRET_VARIABLES, 'ADMIN_TOKEN']);
 * const port = env.read('PORT', envSchemas.integer({ min: 1, max: 65535 })) ?? 3000;
 * env.throwIfInvalid();
 */
export class EnvReader {
  private readonly found: EnvProblem[] = [];
  private readonly secrets = new Map<string, string>();

  constructor(
    private readonly env: Env,
    secretVariables: readonly string[] = SECRET_VARIABLES,
  ) {
    for (const variable of secretVariables) {
      const value = env[variable];
      if (value !== undefined && value !== '' && !this.secrets.has(value)) this.secrets.set(value, variable);
    }
  }

  get problems(): readonly EnvProblem[] {
    return this.found;
  }

  /** Records a problem with `variable`. */
  problem(variable: string, message: string): void {
    this.found.push({ variable, message });
  }

  /** True when the variable is present, even as the empty string. */
  isSet(variable: string): boolean {
    return this.env[variable] !== undefined;
  }

  /**
   * The variable parsed by `schema`: `undefined` when unset, or (after recording a problem naming it) when
   * empty, holding a secret's value, or refused by the schema.
   */
  read<T>(variable: string, schema: z.ZodType<T, string>): T | undefined {
    const value = this.env[variable];
    if (value === undefined) return undefined;
    if (value === '') {
      this.problem(variable, 'is set but empty: unset it to use the default, or give a value');
      return undefined;
    }
    for (const [secret, holder] of this.secrets) {
      if (holder !== variable && value.includes(secret)) {
        this.problem(variable, `holds the value of ${holder}: give that secret in ${holder} only`);
        return undefined;
      }
    }
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data;
    for (const issue of parsed.error.issues) this.problem(variable, issue.message);
    return undefined;
  }

  /** Throws one `EnvValidationError` naming every problem recorded so far. */
  throwIfInvalid(): void {
    if (this.found.length > 0) throw new EnvValidationError(this.found);
  }
}

/**
 * Runs `read` over `env` and returns its result, or throws one `EnvValidationError` naming every bad variable.
 *
 * @example
 * export const appConfig = registerAs('app', () => readEnv(process.env, readAppEnv, [...SECRET_VARIABLES, 'ADMIN_TOKEN']));
 */
export function readEnv<T>(env: Env, read: (reader: EnvReader) => T, secretVariables: readonly string[] = SECRET_VARIABLES): T {
  const reader = new EnvReader(env, secretVariables);
  const value = read(reader);
  reader.throwIfInvalid();
  return value;
}
