/**
 * An error caused by the user's input or situation, not by a bug: the CLI prints its message as one line
 * and exits with `exitCode`. Throw one of the two kinds below.
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

/** Bad input (config, flags, arguments, stdin): exit 2, nothing was started or changed. */
export class UsageError extends UserError {
  constructor(message: string) {
    super(message, 2);
    this.name = "UsageError";
  }
}

/** An operation that failed (a command, the network, the system): exit 1. */
export class OperationError extends UserError {
  constructor(message: string) {
    super(message, 1);
    this.name = "OperationError";
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
