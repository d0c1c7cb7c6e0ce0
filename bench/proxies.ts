/**
 * The contenders: wg-egress, microsocks (Debian's 1.0.3, and upstream 1.0.5 when MICROSOCKS_105 is
 * set) and dante, each started on its own loopback port, plus "direct" (no proxy) as the limit and
 * "node-naive" (bench/naive-relay.ts) as Node's own floor.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "../src/util/run.js";
import { startService } from "./daemon.js";
import type { Endpoint } from "./load.js";

export const TARGETS = [
  "direct",
  "wg-egress",
  "microsocks",
  "microsocks-1.0.5",
  "dante",
  "node-naive",
] as const;
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

/** Upstream microsocks 1.0.5 (16 KiB relay buffer; Debian ships 1.0.3 with 1 KiB): a binary or a source tree. */
export const MICROSOCKS_105_ENV = "MICROSOCKS_105";

/** Why microsocks 1.0.5 is not measured, or undefined when MICROSOCKS_105 names something usable. */
export function microsocks105Skip(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const path = env[MICROSOCKS_105_ENV];
  if (!path)
    return `skipped: set ${MICROSOCKS_105_ENV}=/path/to/microsocks-1.0.5 (a binary, or its source tree to build with -O2)`;
  if (!existsSync(path)) return `skipped: ${MICROSOCKS_105_ENV}=${path} does not exist`;
  return undefined;
}

const MICROSOCKS_SOURCES = ["sockssrv.c", "server.c", "sblist.c", "sblist_delete.c"];

/**
 * The microsocks 1.0.5 binary: MICROSOCKS_105 itself, or built from the source tree it names with -O2
 * into a cache outside the repository (keyed by the sources' hash, so an edit rebuilds).
 */
async function microsocks105Binary(): Promise<string> {
  const path = process.env[MICROSOCKS_105_ENV]!;
  if (!statSync(path).isDirectory()) return path;
  const sources = MICROSOCKS_SOURCES.map((f) => join(path, f));
  const missing = sources.find((f) => !existsSync(f));
  if (missing)
    throw new Error(`${MICROSOCKS_105_ENV}=${path}: no ${missing} (expected microsocks' source tree)`);
  const hash = createHash("sha256");
  for (const f of sources) hash.update(readFileSync(f));
  const cache = join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "wg-egress-bench");
  const bin = join(cache, `microsocks-${hash.digest("hex").slice(0, 16)}`);
  if (!existsSync(bin)) {
    mkdirSync(cache, { recursive: true });
    await run("cc", ["-O2", "-std=c99", "-Wall", "-o", bin, ...sources, "-lpthread"], { timeoutMs: 120_000 });
  }
  return bin;
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

function command(
  name: Exclude<TargetName, "direct">,
  port: number,
  dir: string,
  bin: string | undefined,
): [string, string[]] {
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
    case "microsocks-1.0.5":
      return [bin ?? "microsocks", ["-i", "127.0.0.1", "-p", String(port)]];
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
  if (name === "microsocks-1.0.5") return `1.0.5 (${MICROSOCKS_105_ENV}=${process.env[MICROSOCKS_105_ENV]})`;
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
  const bin = name === "microsocks-1.0.5" ? await microsocks105Binary() : undefined;
  const svc = await startService(join(dir, `${name}.log`), (port) => command(name, port, dir, bin));
  return { name, version, via: { host: "127.0.0.1", port: svc.port }, pid: svc.pid, stop: svc.stop };
}
