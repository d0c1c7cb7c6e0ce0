/**
 * The contenders: wg-egress, microsocks and dante, each started on its own loopback port, plus
 * "direct" (no proxy) as the limit and "node-naive" (bench/naive-relay.ts) as Node's own floor.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "../src/util/run.js";
import { startService } from "./daemon.js";
import type { Endpoint } from "./load.js";

export const TARGETS = ["direct", "wg-egress", "microsocks", "dante", "node-naive"] as const;
export type TargetName = (typeof TARGETS)[number];

export interface Running {
  name: TargetName;
  /** The SOCKS5 address; unset for direct. */
  via?: Endpoint;
  /** Root of the proxy's process tree, for RSS/CPU. */
  pid?: number;
  version: string;
  stop(): Promise<void>;
}

async function packageVersion(pkg: string): Promise<string> {
  // dpkg's own ${Version} field syntax, not a template placeholder.
  const r = await run("dpkg-query", ["-W", `-f=\${Version}`, pkg], { allowFail: true });
  return r.code === 0 ? r.stdout : "unknown";
}

function danteConfig(port: number): string {
  return [
    "logoutput: stderr",
    `internal: 127.0.0.1 port = ${port}`,
    "external: 127.0.0.1",
    "socksmethod: none",
    "clientmethod: none",
    "user.privileged: root",
    "user.unprivileged: nobody",
    "client pass { from: 127.0.0.0/8 to: 127.0.0.0/8 }",
    "socks pass { from: 127.0.0.0/8 to: 127.0.0.0/8 }",
    "",
  ].join("\n");
}

/** Limits raised so 10,000 idle connections from one client IP are not refused by design. */
function wgEgressConfig(port: number): string {
  return [
    "proxy:",
    `  listen: ["127.0.0.1:${port}"]`,
    '  destinations: { allow: ["127.0.0.0/8"] }',
    "  limits: { maxConnections: 100000, maxPerClient: 100000 }",
    "  drainSeconds: 1",
    "",
  ].join("\n");
}

function command(name: Exclude<TargetName, "direct">, port: number, dir: string): [string, string[]] {
  switch (name) {
    case "wg-egress": {
      const conf = join(dir, "wg-egress.yaml");
      writeFileSync(conf, wgEgressConfig(port));
      // The launcher users run (bin/wg-egress).
      const bin = fileURLToPath(new URL("../../bin/wg-egress", import.meta.url));
      const hp = `127.0.0.1:${port}`;
      return [bin, ["proxy", "--config", conf, "--listen", hp, "--allow-destination", "127.0.0.0/8"]];
    }
    case "microsocks":
      return ["microsocks", ["-i", "127.0.0.1", "-p", String(port)]];
    case "node-naive":
      return [process.execPath, [fileURLToPath(new URL("./naive-relay.js", import.meta.url)), String(port)]];
    case "dante": {
      const conf = join(dir, "danted.conf");
      writeFileSync(conf, danteConfig(port));
      // No -D: stays in the foreground, so the process we spawned is the root of its workers.
      return ["danted", ["-f", conf, "-p", join(dir, "danted.pid")]];
    }
  }
}

async function versionOf(name: TargetName): Promise<string> {
  if (name === "microsocks") return packageVersion("microsocks");
  if (name === "dante") return packageVersion("dante-server");
  if (name === "node-naive") return `node ${process.version}`;
  if (name === "wg-egress") {
    const pkg = fileURLToPath(new URL("../../package.json", import.meta.url));
    return `${JSON.parse(readFileSync(pkg, "utf8")).version} (node ${process.version})`;
  }
  return "kernel loopback";
}

export async function startTarget(name: TargetName, dir: string): Promise<Running> {
  const version = await versionOf(name);
  if (name === "direct") return { name, version, stop: async () => {} };
  const svc = await startService(join(dir, `${name}.log`), (port) => command(name, port, dir));
  return { name, version, via: { host: "127.0.0.1", port: svc.port }, pid: svc.pid, stop: svc.stop };
}
