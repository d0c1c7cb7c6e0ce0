import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const LAUNCHER = fileURLToPath(new URL("../../../bin/wg-egress", import.meta.url));

/** Starts the proxy through the launcher and returns GLIBC_TUNABLES as the running process sees it. */
async function tunablesOf(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const child = spawn(LAUNCHER, ["proxy", "--listen", "127.0.0.1:0"], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  try {
    // The launcher execs node, so the pid is the proxy's once it logs "listening".
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("proxy did not start within 10 s")), 10_000);
      child.stderr.on("data", (d: Buffer) => {
        if (d.toString().includes('"listening"')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code) => reject(new Error(`proxy exited with ${code}`)));
    });
    const environ = readFileSync(`/proc/${child.pid}/environ`, "utf8").split("\0");
    return environ.find((e) => e.startsWith("GLIBC_TUNABLES="))?.slice("GLIBC_TUNABLES=".length);
  } finally {
    child.kill("SIGTERM");
  }
}

test("the launcher keeps freed relay buffers mapped (glibc trim threshold), unless the caller chose", async () => {
  const { GLIBC_TUNABLES: _, ...env } = process.env;
  assert.equal(await tunablesOf(env), "glibc.malloc.trim_threshold=134217728");
  assert.equal(
    await tunablesOf({ ...env, GLIBC_TUNABLES: "glibc.malloc.top_pad=1" }),
    "glibc.malloc.top_pad=1",
  );
});
