/**
 * An error caused by the user's input (config, flags, environment), not by a bug.
 * The CLI prints its message as one line and exits with `exitCode` (2 = bad input, 1 = failed operation).
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
    this.name = "UserError";
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
