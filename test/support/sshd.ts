import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { findUserspacePid } from "../../src/gateway/wireguard.js";
import { tempDir } from "./tmp.js";

/**
 * An "exit VPS" for tests: a network namespace this test creates, reached from the host through a veth pair,
 * with a real sshd running as root inside it (so whatever runs over SSH lands in the namespace) and a default
 * route back to the host. Needs root. Names must be unique per test file (wireguard-go sockets are host-wide).
 */
export interface SshExit {
  ns: string;
  /** The namespace's side of the veth: the exit's public interface. */
  nsIf: string;
  hostAddr: string;
  addr: string;
  dir: string;
  /** exit.ssh for the config (files under dir/exit, no system files). */
  ssh: { target: string; identityFile: string; options: string[]; dir: string; system: false };
  /** The same as `exit install`/`exit check` flags. */
  flags: string[];
  inNs: (...args: string[]) => string;
  stop: (wgInterfaces: string[]) => void;
}

async function waitForPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${host}:${port} did not open within ${timeoutMs} ms`);
}

function removeNetwork(ns: string, hostIf: string, wgInterfaces: string[]): void {
  const pids = wgInterfaces.map(findUserspacePid);
  for (const i of wgInterfaces) {
    spawnSync("ip", ["netns", "exec", ns, "ip", "link", "del", i]);
    spawnSync("ip", ["link", "del", i]);
  }
  for (const pid of pids) if (pid) spawnSync("kill", [String(pid)]);
  // What the exit's setup started inside (its resolver, unbound) would keep a deleted namespace alive.
  const inside = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).stdout;
  for (const pid of inside.split("\n").filter(Boolean)) spawnSync("kill", [pid]);
  spawnSync("ip", ["link", "del", hostIf]);
  spawnSync("ip", ["netns", "del", ns]);
}

/**
 * A real sshd as root inside namespace `ns`, listening on `addr`, with a fresh host key and a client key
 * (`dir`/client_key) allowed to log in as root. Returns it and the exit.ssh options that reach it.
 */
export async function startSshd(
  ns: string,
  addr: string,
  dir: string,
): Promise<{ sshd: ChildProcess; identityFile: string; options: string[] }> {
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "host_key")]);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "client_key")]);
  writeFileSync(join(dir, "authorized_keys"), readFileSync(join(dir, "client_key.pub")));
  chmodSync(join(dir, "authorized_keys"), 0o600);
  writeFileSync(
    join(dir, "sshd_config"),
    [
      `ListenAddress ${addr}`,
      "Port 22",
      `HostKey ${join(dir, "host_key")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "",
    ].join("\n"),
  );
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const sshd = spawn(
    "ip",
    ["netns", "exec", ns, "/usr/sbin/sshd", "-D", "-e", "-f", join(dir, "sshd_config")],
    {
      stdio: "ignore",
    },
  );
  await waitForPort(addr, 22, 10_000);
  return {
    sshd,
    identityFile: join(dir, "client_key"),
    options: [`UserKnownHostsFile=${join(dir, "known_hosts")}`, "IdentitiesOnly=yes"],
  };
}

/** A wireguard-go "gateway end" in the host namespace: `keyFile`'s key, one peer, keepalive every second. */
export function startWgPeer(ifname: string, keyFile: string, peer: string, endpoint: string): void {
  execFileSync("wireguard-go", [ifname]);
  execFileSync("wg", [
    "set",
    ifname,
    "private-key",
    keyFile,
    "peer",
    peer,
    "endpoint",
    endpoint,
    "allowed-ips",
    "10.100.0.1/32",
    "persistent-keepalive",
    "1",
  ]);
  execFileSync("ip", ["link", "set", ifname, "up"]);
}

/** `name` (≤ 6 characters) names the namespace and the veth ends; `subnet` is the /24 (10.<subnet>.0.0). */
export async function startSshExit(name: string, subnet: number, wgInterfaces: string[]): Promise<SshExit> {
  const ns = `wgetest-${name}`;
  const hostIf = `wgetest-${name}0`;
  const nsIf = `wgetest-${name}1`;
  const hostAddr = `10.${subnet}.0.1`;
  const addr = `10.${subnet}.0.2`;
  removeNetwork(ns, hostIf, wgInterfaces);
  const dir = tempDir(`wgetest-${name}-`);
  const inNs = (...args: string[]) =>
    execFileSync("ip", ["netns", "exec", ns, ...args], { encoding: "utf8" });
  execFileSync("ip", ["netns", "add", ns]);
  execFileSync("ip", ["link", "add", hostIf, "type", "veth", "peer", "name", nsIf, "netns", ns]);
  execFileSync("ip", ["address", "add", `${hostAddr}/24`, "dev", hostIf]);
  execFileSync("ip", ["link", "set", hostIf, "up"]);
  inNs("ip", "address", "add", `${addr}/24`, "dev", nsIf);
  inNs("ip", "link", "set", nsIf, "up");
  inNs("ip", "link", "set", "lo", "up");
  inNs("ip", "route", "add", "default", "via", hostAddr);
  const { sshd, identityFile, options } = await startSshd(ns, addr, dir);
  const ssh = {
    target: `root@${addr}`,
    identityFile,
    options,
    dir: join(dir, "exit"),
    system: false as const,
  };
  const flags = [
    "--ssh",
    ssh.target,
    "--identity",
    ssh.identityFile,
    ...options.flatMap((o) => ["--ssh-option", o]),
  ];
  return {
    ns,
    nsIf,
    hostAddr,
    addr,
    dir,
    ssh,
    flags,
    inNs,
    stop: (wg) => {
      sshd.kill("SIGTERM");
      removeNetwork(ns, hostIf, wg);
    },
  };
}
