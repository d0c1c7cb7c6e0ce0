import { spawn } from "node:child_process";
import { OperationError } from "./errors.js";
import { log } from "./log.js";

export interface RunOptions {
  /** Written to the command's stdin: the way secrets reach a command without showing up in `ps`. */
  input?: string | Buffer;
  /** Resolve with the result instead of throwing when the exit code is non-zero. */
  allowFail?: boolean;
  timeoutMs?: number;
  /** Arguments equal to one of these are logged as "[redacted]". */
  secrets?: string[];
  env?: NodeJS.ProcessEnv;
  /** Sees stdout as it arrives (a remote script's progress markers), besides the collected result. */
  onStdout?: (chunk: string) => void;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Which Debian package provides a command we run, for the "not found" hint. */
export const PACKAGE_OF: Record<string, string> = {
  wg: "wireguard-tools",
  "wireguard-go": "wireguard-go",
  nft: "nftables",
  ip: "iproute2",
  ssh: "openssh-client",
  conntrack: "conntrack",
  setpriv: "util-linux",
};

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly result: RunResult,
  ) {
    const detail = (result.stderr || result.stdout).trim().split("\n").slice(-3).join(" | ");
    super(`${command} failed (exit ${result.code})${detail ? `: ${detail}` : ""}`);
    this.name = "CommandError";
  }
}

function shown(args: readonly string[], secrets: readonly string[] = []): string[] {
  return args.map((a) => (secrets.includes(a) ? "[redacted]" : a));
}

/**
 * The one way wg-egress runs an external command: logged at debug level with its arguments
 * (secrets redacted), bounded in time, with a clear error when it fails or is not installed.
 */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  log.debug({ cmd, args: shown(args, opts.secrets), stdin: opts.input !== undefined }, "exec");
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], env: opts.env ?? process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout.on("data", (d: Buffer) => {
      out.push(d);
      opts.onStdout?.(d.toString("utf8"));
    });
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.stdin.on("error", () => {}); // the command may exit without reading its stdin
    child.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === "ENOENT") {
        const pkg = PACKAGE_OF[cmd];
        reject(new OperationError(`command "${cmd}" not found${pkg ? `: install the ${pkg} package` : ""}`));
      } else reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const result: RunResult = {
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      };
      const label = [cmd, ...shown(args, opts.secrets)].join(" ");
      if (timedOut) reject(new CommandError(`${label} (timed out after ${timeoutMs} ms)`, result));
      else if (result.code !== 0 && !opts.allowFail) reject(new CommandError(label, result));
      else resolve(result);
    });
    child.stdin.end(opts.input);
  });
}

export interface Watcher {
  /** Stops the command (SIGTERM); `onExit` is not called for a stop we asked for. */
  stop(): void;
}

/**
 * The one way wg-egress runs a long-lived command whose output it follows (`ip monitor`, `nft monitor`):
 * logged at debug like `run`, each stdout line handed to `onLine`, `onExit` called when it ends by itself
 * (the caller decides whether to start it again). A missing command ends it at once with the package hint.
 */
export function watch(
  cmd: string,
  args: readonly string[],
  onLine: (line: string) => void,
  onExit: (reason: string) => void,
): Watcher {
  log.debug({ cmd, args }, "watch");
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stopped = false;
  let partial = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    const lines = (partial + d.toString("utf8")).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) if (line) onLine(line);
  });
  // Keep the last bit only: it is for the exit message.
  child.stderr.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString("utf8")).slice(-500);
  });
  const ended = (reason: string) => {
    if (stopped) return;
    stopped = true;
    onExit(reason);
  };
  child.on("error", (e: NodeJS.ErrnoException) => {
    const pkg = PACKAGE_OF[cmd];
    ended(
      e.code === "ENOENT"
        ? `command "${cmd}" not found${pkg ? `: install the ${pkg} package` : ""}`
        : e.message,
    );
  });
  child.on("close", (code, signal) =>
    ended(
      `${cmd} ${args.join(" ")} ended (${signal ?? `exit ${code}`})${stderr.trim() ? `: ${stderr.trim()}` : ""}`,
    ),
  );
  return {
    stop() {
      stopped = true;
      child.kill("SIGTERM");
    },
  };
}
