/** One environment variable that cannot be used as given. */
export interface EnvProblem {
  variable: string;
  /** What is wrong and what to change. Never contains the value of a secret. */
  message: string;
}

/**
 * The environment cannot start the service. The message names every bad variable; it quotes values only of
 * variables that are not secrets.
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

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

// A run that could be (part of) an account key, 88 random base64 characters: a key pasted into the wrong
// variable must not end up quoted in the error. Names rarely mix upper case, lower case and digits in 20.
const SECRET_LIKE = /[A-Za-z0-9+/_-]{20,}={0,2}/g;
const looksSecret = (run: string) => /[A-Z]/.test(run) && /[a-z]/.test(run) && /[0-9]/.test(run);

/** A value for an error message, JSON-quoted, with anything that could be a secret left out. */
function quote(value: string): string {
  return JSON.stringify(value.replace(SECRET_LIKE, (run) => (looksSecret(run) ? '[not shown]' : run)));
}

/** The variables the service reads that hold secrets: their values are never logged nor quoted. */
const SECRET_VARIABLES: readonly string[] = ['COSMOS_KEY', 'ADMIN_TOKEN'];

interface IntegerRule {
  min: number;
  max: number;
}

/**
 * A small validating reader of environment variables: each method returns the value (or the default) and
 * records a problem instead of throwing, so one start-up error lists every bad variable.
 * A variable set to the empty string is a problem, not "unset": an empty `COSMOS_ENDPOINT` silently
 * switching to the in-memory server, or an empty `COSMOS_KEY` to another credential, would hide a typo.
 *
 * @example
 * const env = new EnvReader(process.env);
 * const port = env.integer('PORT', { min: 1, max: 65535 }) ?? 3000;
 * env.throwIfInvalid();
 */
export class EnvReader {
  private readonly found: EnvProblem[] = [];
  // The secrets' values, whatever order the variables are read in: another variable holding one (or more) is
  // refused, as its value may be logged (ids are, at start-up) or quoted in a problem.
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

  /** The raw value; `undefined` when unset or (after recording a problem) when set to the empty string. */
  raw(variable: string): string | undefined {
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
    return value;
  }

  /** An `http:` or `https:` URL without credentials in it. The value is never quoted: it may hold a secret. */
  url(variable: string): string | undefined {
    const value = this.raw(variable);
    if (value === undefined) return undefined;
    if (/accountkey=/i.test(value)) {
      this.problem(variable, 'looks like a connection string: give only the account endpoint URL here and the key in COSMOS_KEY');
      return undefined;
    }
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      this.problem(variable, 'must be a URL such as https://my-account.documents.azure.com:443/');
      return undefined;
    }
    if (value.trim() !== value || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
      this.problem(variable, 'must be an http(s) URL such as https://my-account.documents.azure.com:443/');
      return undefined;
    }
    if (url.username !== '' || url.password !== '') {
      this.problem(variable, 'must not carry credentials in the URL: give the key in COSMOS_KEY');
      return undefined;
    }
    // The SDK resolves request paths against the endpoint, dropping any query or fragment: one here would be
    // ignored, and may be a token that should not sit in configuration.
    if (url.search !== '' || url.hash !== '' || /[?#]/.test(value)) {
      this.problem(variable, 'must be the account URL alone, without a query (?) or fragment (#)');
      return undefined;
    }
    return value;
  }

  /**
   * A base64 secret such as a Cosmos DB account key. Problems never quote the value, nor any part of it.
   */
  base64Secret(variable: string): string | undefined {
    const value = this.raw(variable);
    if (value === undefined) return undefined;
    if (/accountendpoint=|accountkey=/i.test(value)) {
      this.problem(variable, 'looks like a connection string: give only the account key here and the endpoint in COSMOS_ENDPOINT');
      return undefined;
    }
    if (!BASE64.test(value)) {
      this.problem(variable, 'must be the account key as the Azure portal shows it (standard base64, no spaces or line breaks); the value is not shown');
      return undefined;
    }
    return value;
  }

  /**
   * A shared secret such as a bearer token: printable ASCII without spaces, at least `minLength` long, and
   * not another secret's value. Never quoted.
   */
  secret(variable: string, { minLength }: { minLength: number }): string | undefined {
    const value = this.raw(variable);
    if (value === undefined) return undefined;
    if (value.length < minLength || !/^[\x21-\x7e]+$/.test(value)) {
      this.problem(variable, `must be at least ${minLength} printable ASCII characters without spaces; the value is not shown`);
      return undefined;
    }
    return value;
  }

  /**
   * A Cosmos DB resource id: 1 to 255 characters, none of `/ \ ? #`, no trailing space, not only white space
   * (@azure/cosmos refuses those) and not `.` or `..` (the id is a URL path segment, which they would resolve),
   * nor the value of a secret (ids are logged).
   */
  resourceId(variable: string): string | undefined {
    const value = this.raw(variable);
    if (value === undefined) return undefined;
    if (
      value.length > 255 ||
      /[/\\?#]/.test(value) ||
      value.endsWith(' ') ||
      /^\s*$/.test(value) ||
      value === '.' ||
      value === '..' ||
      !value.isWellFormed()
    ) {
      this.problem(
        variable,
        `must be a Cosmos DB id of at most 255 characters without / \\ ? #, a trailing space, only white space, ` +
          `or "." or "..", got ${quote(value)}`,
      );
      return undefined;
    }
    return value;
  }

  /** A decimal integer within `[min, max]` (digits only: no sign, exponent, fraction or spaces). */
  integer(variable: string, { min, max }: IntegerRule): number | undefined {
    const value = this.raw(variable);
    if (value === undefined) return undefined;
    const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `an integer of at least ${min}` : `an integer from ${min} to ${max}`;
      this.problem(variable, `must be ${range}, got ${quote(value)}`);
      return undefined;
    }
    return n;
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
 * export const appConfig = registerAs('app', () => readEnv(process.env, readAppConfig));
 */
export function readEnv<T>(env: Env, read: (reader: EnvReader) => T): T {
  const reader = new EnvReader(env);
  const value = read(reader);
  reader.throwIfInvalid();
  return value;
}
