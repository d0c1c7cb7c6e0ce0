/**
 * A command line that dies with the test process: `setpriv --pdeathsig KILL` (util-linux, which every
 * Debian has) execs the command with the parent-death signal set, so the PID stays the command's own.
 * Without it, a test file cut by its timeout (or --test-force-exit) leaves its daemons running.
 */
export const tied = (argv: string[]): string[] => ["setpriv", "--pdeathsig", "KILL", "--", ...argv];
