import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { renderExitHost } from "../../src/exit/host.js";
import { renderInstallScript } from "../../src/exit/ssh-install.js";
import { findUserspacePid } from "../../src/gateway/wireguard.js";
import { generatePrivateKey, publicKeyOf } from "../../src/wireguard/keys.js";
import { cli } from "../support/cli.js";
import { writeConfig } from "../support/config.js";
import { tempDir } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";

before(() => requireTools("sshd", "ssh", "ssh-keygen", "wg", "wireguard-go", "nft"));

/**
 * `exit install --ssh` against a real sshd running as root in a namespace this test creates (wgetest-ssh,
 * 10.77.0.2 behind a veth from the host's 10.77.0.1): the setup must land inside that namespace, with
 * wireguard-go (no kernel module here). Then `secrets rotate` over the same SSH path.
 */

const NS = "wgetest-ssh";
const HOST_IF = "wgetest-sh0";
const NS_IF = "wgetest-sh1";
const WG_IF = "wgetest-x0"; // wireguard-go sockets are host-wide: a name nobody else uses
/** The "gateway" end for rotate, in the host namespace; its only peer endpoint is inside our namespace. */
const GW_IF = "wgetest-g0";

let dir = "";
let sshd: ReturnType<typeof spawn> | undefined;

const inNs = (...args: string[]) => execFileSync("ip", ["netns", "exec", NS, ...args], { encoding: "utf8" });

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

function cleanupNetwork(): void {
  // The exit's resolver (unbound) runs until stopped: it would keep the deleted namespace alive.
  if (dir) spawnSync("sh", ["-c", `kill "$(cat '${join(dir, "exit", "unbound.pid")}')"`]);
  const pids = [findUserspacePid(WG_IF), findUserspacePid(GW_IF)];
  spawnSync("ip", ["netns", "exec", NS, "ip", "link", "del", WG_IF]);
  spawnSync("ip", ["link", "del", GW_IF]);
  for (const pid of pids) if (pid) spawnSync("kill", [String(pid)]);
  spawnSync("ip", ["link", "del", HOST_IF]);
  spawnSync("ip", ["netns", "del", NS]);
}

before(async () => {
  cleanupNetwork();
  dir = tempDir("wgetest-ssh-");
  execFileSync("ip", ["netns", "add", NS]);
  execFileSync("ip", ["link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF, "netns", NS]);
  execFileSync("ip", ["address", "add", "10.77.0.1/24", "dev", HOST_IF]);
  execFileSync("ip", ["link", "set", HOST_IF, "up"]);
  inNs("ip", "address", "add", "10.77.0.2/24", "dev", NS_IF);
  inNs("ip", "link", "set", NS_IF, "up");
  inNs("ip", "link", "set", "lo", "up");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "host_key")]);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "client_key")]);
  writeFileSync(join(dir, "authorized_keys"), readFileSync(join(dir, "client_key.pub")));
  chmodSync(join(dir, "authorized_keys"), 0o600);
  writeFileSync(
    join(dir, "sshd_config"),
    [
      "ListenAddress 10.77.0.2",
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
  sshd = spawn("ip", ["netns", "exec", NS, "/usr/sbin/sshd", "-D", "-e", "-f", join(dir, "sshd_config")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  await waitForPort("10.77.0.2", 22, 10_000);
});

after(() => {
  sshd?.kill("SIGTERM");
  cleanupNetwork();
});

function sshFlags(): string[] {
  return [
    "--ssh",
    "root@10.77.0.2",
    "--identity",
    join(dir, "client_key"),
    "--ssh-option",
    `UserKnownHostsFile=${join(dir, "known_hosts")}`,
    "--ssh-option",
    "StrictHostKeyChecking=accept-new",
    "--ssh-option",
    "IdentitiesOnly=yes",
    "--dir",
    join(dir, "exit"),
    "--no-system",
  ];
}

/** Waits (bounded) until the exit in the namespace reports a handshake at or after `since` (Unix seconds). */
async function handshake(since: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const peers = inNs("wg", "show", WG_IF, "latest-handshakes").trim().split("\n");
    if (peers.some((l) => Number(l.split("\t")[1]) >= since)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  const show = `${execFileSync("wg", ["show", GW_IF], { encoding: "utf8" })}\n${inNs("wg", "show", WG_IF)}`;
  throw new Error(`no WireGuard handshake between the gateway and the exit within 10 s:\n${show}`);
}

function exitKeyOfDump(dump: string): { pub: string; peers: string[] } {
  const [iface, ...peers] = dump.trim().split("\n");
  return { pub: iface.split("\t")[1], peers: peers.map((l) => l.split("\t")[0]) };
}

test("the install script stores the setup script and only adds system files when asked", () => {
  const exit = parseConfig({ exit: { sshAuthorizedKeys: ["ssh-ed25519 AAAAC3 me@home"] } }).exit;
  const host = renderExitHost(exit, {
    privateKey: generatePrivateKey(),
    gatewayPublicKey: publicKeyOf(generatePrivateKey()),
  });
  const bare = renderInstallScript(exit, host, { dir: "/srv/x y", system: false });
  assert.match(bare, /export WG_EGRESS_EXIT_DIR='\/srv\/x y'/);
  assert.doesNotMatch(bare, /sshd_config|systemctl/);
  const full = renderInstallScript(exit, host, { dir: "/etc/wg-egress", system: true });
  assert.match(full, /sshd_config\.d\/90-wg-egress\.conf/);
  assert.match(full, /PasswordAuthentication no/);
  assert.match(full, /grep -qxF 'ssh-ed25519 AAAAC3 me@home'/);
  assert.match(full, /systemctl enable wg-egress-exit\.service/);
  execFileSync("sh", ["-n"], { input: full });
});

test("exit install over SSH applies WireGuard and nftables inside the sshd's namespace; rotate follows", {
  timeout: 120_000,
}, async () => {
  const config = join(dir, "config.yaml");
  // For rotate (install gets the same through flags).
  const ssh = {
    target: "root@10.77.0.2",
    identityFile: join(dir, "client_key"),
    options: [
      `UserKnownHostsFile=${join(dir, "known_hosts")}`,
      "StrictHostKeyChecking=accept-new",
      "IdentitiesOnly=yes",
    ],
    dir: join(dir, "exit"),
    system: false,
  };
  writeConfig(dir, {
    exit: { interface: WG_IF, publicInterface: NS_IF, ssh },
    gateway: {
      interface: GW_IF,
      privateKeyFile: join(dir, "gateway.key"),
      peer: { allowedIps: ["10.100.0.1/32"], persistentKeepalive: 1 },
    },
  });
  const init = await cli(["secrets", "init", "-c", config]);
  assert.equal(init.code, 0, init.stderr);
  const exitPub = /exit public key:\s+(\S+)/.exec(init.stdout)![1];
  const gwPub = /gateway public key:\s+(\S+)/.exec(init.stdout)![1];
  const hostHadTable = spawnSync("nft", ["list", "table", "inet", "wg-egress-exit"]).status === 0;

  const r = await cli(["exit", "install", "-c", config, "--log-level", "debug", ...sshFlags()]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wg-egress: exit configured/);
  const wg = exitKeyOfDump(inNs("wg", "show", WG_IF, "dump"));
  assert.equal(wg.pub, exitPub);
  assert.deepEqual(wg.peers, [gwPub]);
  assert.match(inNs("ip", "-4", "-o", "address", "show", "dev", WG_IF), /10\.100\.0\.1\/24/);
  assert.match(inNs("nft", "list", "table", "inet", "wg-egress-exit"), /udp dport 51820 accept/);
  if (!hostHadTable)
    assert.notEqual(
      spawnSync("nft", ["list", "table", "inet", "wg-egress-exit"]).status,
      0,
      "applied in the namespace, not on the host",
    );
  // The private key went over stdin only: not in the logged ssh command line.
  const exitPriv = (
    await cli(["secrets", "show", "-c", config, "--reveal", "exit.privateKey"])
  ).stdout.trim();
  assert.ok(!r.stderr.includes(exitPriv) && !r.stdout.includes(exitPriv));
  assert.equal(readFileSync(join(dir, "exit", `${WG_IF}.conf`), "utf8").includes(exitPriv), true);

  // Again: converges, same state.
  assert.equal((await cli(["exit", "install", "-c", config, ...sshFlags()])).code, 0);

  // A live gateway end with the old keys, so rotate must switch a running interface too.
  const oldGwPriv = (
    await cli(["secrets", "show", "-c", config, "--reveal", "gateway.privateKey"])
  ).stdout.trim();
  writeFileSync(join(dir, "gateway.key"), `${oldGwPriv}\n`, { mode: 0o600 });
  const now = () => Math.floor(Date.now() / 1000);
  const startedGw = now();
  execFileSync("wireguard-go", [GW_IF]);
  execFileSync("wg", [
    "set",
    GW_IF,
    "private-key",
    join(dir, "gateway.key"),
    "peer",
    exitPub,
    "endpoint",
    "10.77.0.2:51820",
    "allowed-ips",
    "10.100.0.1/32",
    "persistent-keepalive",
    "1",
  ]);
  execFileSync("ip", ["link", "set", GW_IF, "up"]);
  await handshake(startedGw);

  // Rotation: the exit (over SSH, from exit.ssh in the config) and the gateway follow the store.
  const rotatedAt = now();
  const rot = await cli(["secrets", "rotate", "-c", config]);
  assert.equal(rot.code, 0, rot.stderr);
  const shown = (await cli(["secrets", "show", "-c", config])).stdout;
  const newExitPub = /exit public key:\s+(\S+)/.exec(shown)![1];
  const newGwPub = /gateway public key:\s+(\S+)/.exec(shown)![1];
  assert.notEqual(newExitPub, exitPub);
  assert.notEqual(newGwPub, gwPub);
  const rotated = exitKeyOfDump(inNs("wg", "show", WG_IF, "dump"));
  assert.equal(rotated.pub, newExitPub);
  assert.deepEqual(rotated.peers, [newGwPub], "old gateway peer removed");
  const gw = exitKeyOfDump(execFileSync("wg", ["show", GW_IF, "dump"], { encoding: "utf8" }));
  assert.equal(gw.pub, newGwPub, "the running gateway interface switched keys");
  assert.deepEqual(gw.peers, [newExitPub]);
  await handshake(rotatedAt);
  const gwKey = readFileSync(join(dir, "gateway.key"), "utf8").trim();
  assert.equal(publicKeyOf(gwKey), newGwPub);
  assert.equal(statSync(join(dir, "gateway.key")).mode & 0o777, 0o600);
  assert.match(readFileSync(config, "utf8"), new RegExp(`publicKey: ${newExitPub.replace(/[+/]/g, "\\$&")}`));
  // Steps in the order that keeps the tunnel up longest.
  const order = [
    "store the new keys",
    "accept the new gateway key",
    "gateway: write the new private key",
    "switch to its new key",
    "gateway: peer",
  ];
  const idx = order.map((s) => rot.stdout.indexOf(s));
  assert.ok(
    idx.every((i, n) => i >= 0 && (n === 0 || i > idx[n - 1])),
    rot.stdout,
  );
  for (const secret of [gwKey, exitPriv])
    assert.ok(!rot.stdout.includes(secret) && !rot.stderr.includes(secret));
});
