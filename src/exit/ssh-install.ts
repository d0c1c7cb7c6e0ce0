import type { ExitConfig } from "../config/exit-schema.js";
import { OperationError, UsageError } from "../util/errors.js";
import { run } from "../util/run.js";
import type { ExitHost } from "./host.js";
import { EXIT_UNIT, setupScriptPath, systemFiles } from "./system-files.js";

/** Applies the exit configuration to an existing machine over SSH (bring your own VPS). */

export interface SshTarget {
  target: string;
  port: number;
  identityFile?: string;
  /** Extra `-o` options (known hosts file, ...). */
  options: string[];
}

/** A single-quoted sh word. */
export const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

function heredoc(path: string, content: string, mode: string, tag: string): string {
  const body = content.endsWith("\n") ? content : `${content}\n`;
  return `cat > ${shellQuote(path)} <<'${tag}'\n${body}${tag}\nchmod ${mode} ${shellQuote(path)}\n`;
}

export interface InstallOptions {
  /** Directory for the exit's files on the remote host. */
  dir: string;
  /** Also install the boot unit, SSH hardening, authorized keys and unattended upgrades. */
  system: boolean;
}

/**
 * PURE: the script fed to `sh -s` on the remote host. It stores and runs the host renderer's setup script
 * (which holds the private key, so it only ever travels on stdin), then optionally the system files.
 */
export function renderInstallScript(exit: ExitConfig, host: ExitHost, opts: InstallOptions): string {
  const setup = setupScriptPath(opts.dir);
  let s = `set -eu
umask 077
export WG_EGRESS_EXIT_DIR=${shellQuote(opts.dir)}
mkdir -p "$WG_EGRESS_EXIT_DIR"
${heredoc(setup, host.setupScript, "0700", "WG_EGRESS_SETUP_EOF")}sh ${shellQuote(setup)}
`;
  if (opts.system) {
    s += systemFiles(exit, opts.dir)
      .map((f) => heredoc(f.path, f.content, f.permissions, "WG_EGRESS_FILE_EOF"))
      .join("");
    s += `mkdir -p /root/.ssh && chmod 700 /root/.ssh && touch /root/.ssh/authorized_keys
${exit.sshAuthorizedKeys.map((k) => `grep -qxF ${shellQuote(k)} /root/.ssh/authorized_keys || printf '%s\\n' ${shellQuote(k)} >> /root/.ssh/authorized_keys`).join("\n")}
if command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload
  systemctl enable ${EXIT_UNIT}
  # Only reload sshd with a config it accepts, or the next login could fail.
  if sshd -t; then systemctl reload ssh 2>/dev/null || systemctl reload sshd; fi
  if ! command -v unattended-upgrade >/dev/null 2>&1; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q unattended-upgrades
  fi
fi
`;
  }
  return `${s}echo "wg-egress: exit configured"\n`;
}

export function sshArgs(t: SshTarget): string[] {
  if (!/^[^\s@]+@[^\s@]+$/.test(t.target) && !/^[^\s@-][^\s@]*$/.test(t.target))
    throw new UsageError(`--ssh ${JSON.stringify(t.target)}: expected USER@HOST, e.g. root@203.0.113.10`);
  // A freshly provisioned exit has a host key nobody knows yet: trust it on first use, check it ever after
  // (BatchMode would otherwise refuse every new exit). An explicit StrictHostKeyChecking option wins.
  const tofu = t.options.some((o) => /^StrictHostKeyChecking\b/i.test(o))
    ? []
    : ["-o", "StrictHostKeyChecking=accept-new"];
  return [
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=15",
    ...tofu,
    ...t.options.flatMap((o) => ["-o", o]),
    "-p",
    String(t.port),
    ...(t.identityFile ? ["-i", t.identityFile] : []),
    "--",
    t.target,
    "sh -s",
  ];
}

export interface SshRunOptions {
  timeoutMs?: number;
  /** What the script does, for the error message ("setup", "check", ...). */
  what?: string;
  /** Called with each complete line of the remote output as it arrives (progress markers). */
  onLine?: (line: string) => void;
}

/** Splits streamed chunks into lines for `onLine`. */
function lineSplitter(onLine: (line: string) => void): (chunk: string) => void {
  let rest = "";
  return (chunk) => {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    for (const l of lines) onLine(l);
  };
}

/** Runs `script` on the target through `ssh ... sh -s`, the script on stdin; returns the remote output. */
export async function runOverSsh(t: SshTarget, script: string, opts: SshRunOptions = {}): Promise<string> {
  const r = await run("ssh", sshArgs(t), {
    input: script,
    timeoutMs: opts.timeoutMs ?? 300_000,
    allowFail: true,
    onStdout: opts.onLine && lineSplitter(opts.onLine),
  });
  if (r.code !== 0) {
    const detail = r.stderr.trim().split("\n").slice(-3).join(" | ");
    throw new OperationError(
      r.code === 255
        ? `ssh to ${t.target} port ${t.port} failed: ${detail}; check the address, the key (--identity) and the host key`
        : `${opts.what ?? "setup"} on ${t.target} failed (exit ${r.code}): ${detail}`,
    );
  }
  return r.stdout;
}
