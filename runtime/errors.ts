/**
 * An error meant for the caller: it carries the HTTP status, a stable code and,
 * for validation problems, the field at fault. Anything else that reaches the
 * HTTP error handler is a bug and answers 500 without details.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    /** Seconds after which a retry may succeed (503/429), sent as Retry-After. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
