/**
 * Long-lived helper processes (proxies, iperf3 server, one-byte server). run.ts is for commands that
 * finish; these are spawned here, each in its own process group, so stopping one reaches dante's forked
 * workers and nothing we did not start.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import net from "node:net";

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => child.once("exit", () => r()));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM to the group we created, then SIGKILL if anything of it is left after a grace period. */
async function stopGroup(child: ChildProcess): Promise<void> {
  const pgid = child.pid!;
  if (!groupAlive(pgid)) return;
  process.kill(-pgid, "SIGTERM");
  const deadline = Date.now() + 3000;
  while (groupAlive(pgid) && Date.now() < deadline) await sleep(50);
  if (groupAlive(pgid)) process.kill(-pgid, "SIGKILL");
  await exited(child);
}

async function waitListening(port: number, child: ChildProcess, log: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) break;
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  const tail = readFileSync(log, "utf8").trim().split("\n").slice(-3).join(" | ");
  await stopGroup(child);
  throw new Error(`did not start listening on 127.0.0.1:${port}${tail ? `: ${tail}` : ""}`);
}

async function startDaemon(cmd: string, args: string[], port: number, log: string): Promise<ChildProcess> {
  const fd = openSync(log, "a");
  const child = spawn(cmd, args, { detached: true, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", (e: NodeJS.ErrnoException) =>
      reject(e.code === "ENOENT" ? new Error(`command "${cmd}" not found`) : e),
    );
  });
  await waitListening(port, child, log);
  return child;
}

export interface Service {
  port: number;
  /** Root of its process tree. */
  pid: number;
  stop(): Promise<void>;
}

/**
 * Starts `[cmd, args] = commandFor(port)` on a free loopback port, in its own process group with
 * stdout/stderr appended to `log`, and resolves once the port accepts connections.
 */
export async function startService(
  log: string,
  commandFor: (port: number) => [string, string[]],
): Promise<Service> {
  const port = await freePort();
  const [cmd, args] = commandFor(port);
  const child = await startDaemon(cmd, args, port, log);
  // Once stopped, never signal that group id again: the number could be reused by someone else.
  let stopping: Promise<void> | undefined;
  return { port, pid: child.pid!, stop: () => (stopping ??= stopGroup(child)) };
}
