import { type ChildProcess, spawn } from "node:child_process";

/**
 * Holds /tmp/wgelab.lock (the lab is shared by every lab test) until released: flock runs `cat`, which
 * ends when the holder closes its stdin (`release`). Waits at most 600 s for the lock.
 */
export async function acquireLabLock(): Promise<{ release: () => void }> {
  const child: ChildProcess = spawn(
    "flock",
    ["-w", "600", "/tmp/wgelab.lock", "sh", "-c", "echo locked; exec cat"],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once("data", () => resolve());
    child.once("exit", (code) => reject(new Error(`flock exited ${code}`)));
  });
  return { release: () => child.stdin!.end() };
}
