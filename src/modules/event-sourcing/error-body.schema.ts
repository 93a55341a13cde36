/**
 * `EventStoreExceptionFilter`'s answers as plain JSON Schema (the subset OpenAPI 3.0 and 3.1 share), for an
 * application's API description: the package does not depend on any OpenAPI library, the application hands
 * these objects to its own (`@nestjs/swagger`'s `@ApiResponse({ schema })`, a hand-written document, ...).
 */

/** The JSON Schema keywords these descriptions use: structurally what OpenAPI libraries take as a schema object. */
export interface ErrorBodyJsonSchema {
  type: 'object' | 'string' | 'integer' | 'boolean' | 'array';
  description?: string;
  required?: string[];
  properties?: Record<string, ErrorBodyJsonSchema>;
  items?: ErrorBodyJsonSchema;
  enum?: Array<string | number | boolean>;
  minimum?: number;
  maximum?: number;
}

/** One answer of the filter: the HTTP status, what it means, and its body's schema. */
export interface ErrorAnswer {
  status: 400 | 404 | 409 | 422 | 500 | 503;
  description: string;
  schema: ErrorBodyJsonSchema;
}

/**
 * The body of every answer of `EventStoreExceptionFilter` (`ErrorBody`): `statusCode`, `error` and `message`
 * always, and the fields some errors add (`field`, `versions`, `problems`, `retryable`). Other properties are
 * allowed, so an application's own error bodies that extend the shape (a 503 carrying more detail) still match.
 *
 * @example
 * // An application feeding @nestjs/swagger:
 * ApiResponse({ status: 409, description: 'conflict', schema: errorBodySchema })
 */
export const errorBodySchema: ErrorBodyJsonSchema = {
  type: 'object',
  description: 'An error: `{ statusCode, error, message }` as Nest answers, plus what the client needs to act on it',
  required: ['statusCode', 'error', 'message'],
  properties: {
    statusCode: { type: 'integer', minimum: 400, maximum: 599, description: 'The HTTP status, repeated' },
    error: { type: 'string', description: "The status's reason phrase (`Conflict`)" },
    message: { type: 'string', description: 'What went wrong and what to change' },
    field: { type: 'string', description: 'The input to change (400, a `ValidationError`)' },
    versions: {
      type: 'array',
      items: { type: 'integer', minimum: 1 },
      description: 'The versions that already exist (409) or whose write Cosmos DB did not confirm (503)',
    },
    problems: { type: 'array', items: { type: 'string' }, description: "What is wrong with a command's input (422)" },
    retryable: {
      type: 'boolean',
      enum: [true],
      description: 'Nothing was changed and the same request may simply be sent again (409, a command that kept losing the race)',
    },
  },
};

/** `errorBodySchema` narrowed to one status: `statusCode` is that number and `error` its reason phrase. */
export function errorBodySchemaFor(statusCode: number, error: string, description?: string): ErrorBodyJsonSchema {
  const { properties = {} } = errorBodySchema;
  return {
    ...errorBodySchema,
    ...(description !== undefined && { description }),
    properties: {
      ...properties,
      statusCode: { type: 'integer', enum: [statusCode] },
      error: { type: 'string', enum: [error] },
    },
  };
}

/**
 * Every answer `EventStoreExceptionFilter` gives, one per status, in the order of the statuses: what a route
 * behind the filter can answer besides its own results. Keyed by status for `@ApiResponse`-style decorators.
 */
export const eventStoreErrorAnswers: Readonly<Record<ErrorAnswer['status'], ErrorAnswer>> = {
  400: {
    status: 400,
    description: 'Invalid input (`ValidationError`): `field` names it',
    schema: errorBodySchemaFor(400, 'Bad Request'),
  },
  404: {
    status: 404,
    description: 'No such aggregate or document (`NotFoundError`)',
    schema: errorBodySchemaFor(404, 'Not Found'),
  },
  409: {
    status: 409,
    description:
      'A version that exists (`versions`), an aggregate that exists, a command its state does not allow, or `retryable: true` when a command kept losing the race to concurrent ones',
    schema: errorBodySchemaFor(409, 'Conflict'),
  },
  422: {
    status: 422,
    description: 'A command refused its input (`problems`) or refused to run',
    schema: errorBodySchemaFor(422, 'Unprocessable Entity'),
  },
  500: {
    status: 500,
    description: 'A stored event this service cannot replay, or the event store failed (the log has the detail)',
    schema: errorBodySchemaFor(500, 'Internal Server Error'),
  },
  503: {
    status: 503,
    description: 'Cosmos DB is unavailable (retry later), or did not confirm a write (`versions`: reload before retrying)',
    schema: errorBodySchemaFor(503, 'Service Unavailable'),
  },
};
