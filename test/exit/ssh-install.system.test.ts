import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import type { CheckResult } from "../../src/doctor/check.js";
import { renderExitHost } from "../../src/exit/host.js";
import { renderInstallScript } from "../../src/exit/ssh-install.js";
import { generatePrivateKey, publicKeyOf } from "../../src/wireguard/keys.js";
import { cli } from "../support/cli.js";
import { writeConfig } from "../support/config.js";
import { type SshExit, startSshExit, startWgPeer } from "../support/sshd.js";
import { requireTools } from "../support/tools.js";

/**
 * `exit install --ssh` and `exit check` against a real sshd running as root in a namespace this test
 * creates (an "exit VPS" at 10.77.0.2 behind a veth from the host's 10.77.0.1): the setup must land inside
 * that namespace, with wireguard-go (no kernel module here); the check reads it back, read-only, and names
 * each broken part of the runbook with its fix.
 */

const WG_IF = "wgetest-x0"; // wireguard-go sockets are host-wide: a name nobody else uses
/** A "gateway" end in the host namespace, so the exit sees a handshake. */
const GW_IF = "wgetest-g0";

let vps: SshExit;
let config = "";

before(async () => {
  requireTools("sshd", "ssh", "ssh-keygen", "wg", "wireguard-go", "nft", "getent", "timeout");
  vps = await startSshExit("ssh", 77, [WG_IF, GW_IF]);
  config = writeConfig(vps.dir, {
    exit: { interface: WG_IF, publicInterface: vps.nsIf, ssh: vps.ssh },
    gateway: { interface: GW_IF, peer: { allowedIps: ["10.100.0.1/32"], persistentKeepalive: 1 } },
  });
});

after(() => vps?.stop([WG_IF, GW_IF]));

function exitDump(dump: string): { pub: string; peers: string[] } {
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

const check = async () => {
  const r = await cli(["exit", "check", "-c", config, "--json", "--resolve", "wg-egress.invalid"]);
  const results = JSON.parse(r.stdout) as CheckResult[];
  return { code: r.code, byName: Object.fromEntries(results.map((x) => [x.name, x])), results };
};

/** What `exit check` must never change on the exit. */
const exitState = () =>
  [
    vps.inNs("wg", "show", WG_IF, "dump"),
    vps.inNs("nft", "list", "table", "inet", "wg-egress-exit"),
    vps.inNs("cat", "/proc/sys/net/ipv4/ip_forward"),
    vps.inNs("ip", "-o", "address", "show", "dev", WG_IF),
  ].join("\n");

test("exit install over SSH applies WireGuard and nftables inside the sshd's namespace; exit check reads it back", {
  timeout: 120_000,
}, async () => {
  const init = await cli(["secrets", "init", "-c", config]);
  assert.equal(init.code, 0, init.stderr);
  const exitPub = /exit public key:\s+(\S+)/.exec(init.stdout)![1];
  const gwPub = /gateway public key:\s+(\S+)/.exec(init.stdout)![1];
  const hostHadTable = spawnSync("nft", ["list", "table", "inet", "wg-egress-exit"]).status === 0;

  const r = await cli(["exit", "install", "-c", config, "--log-level", "debug", "--no-system"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wg-egress: exit configured/);
  const wg = exitDump(vps.inNs("wg", "show", WG_IF, "dump"));
  assert.equal(wg.pub, exitPub);
  assert.deepEqual(wg.peers, [gwPub]);
  assert.match(vps.inNs("ip", "-4", "-o", "address", "show", "dev", WG_IF), /10\.100\.0\.1\/24/);
  assert.match(vps.inNs("nft", "list", "table", "inet", "wg-egress-exit"), /udp dport 51820 accept/);
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
  assert.equal(readFileSync(join(vps.ssh.dir, `${WG_IF}.conf`), "utf8").includes(exitPriv), true);
  // Again: converges, same state.
  assert.equal((await cli(["exit", "install", "-c", config])).code, 0);

  // The check, before any gateway: everything passes but the handshake, and it changes nothing.
  const before = exitState();
  const first = await check();
  assert.equal(first.code, 1, JSON.stringify(first.results));
  assert.deepEqual(
    first.results.map((x) => [x.name, x.verdict]),
    [
      ["ssh", "pass"],
      ["exit interface", "pass"],
      ["gateway peer", "pass"],
      ["handshake (exit's view)", "fail"],
      ["IP forwarding", "pass"],
      ["masquerade", "pass"],
      ["firewall", "pass"],
      ["resolver", "warn"],
    ],
  );
  assert.equal(first.byName["handshake (exit's view)"].evidence, "no handshake with the gateway ever");
  assert.ok(!JSON.stringify(first.results).includes(exitPriv), "the exit's private key never leaves it");
  assert.equal(exitState(), before, "read-only");

  // A gateway end with the stored keys: the handshake passes.
  // secrets init wrote the stored gateway key to gateway.privateKeyFile.
  startWgPeer(GW_IF, join(vps.dir, "gateway.key"), exitPub, `${vps.addr}:51820`);
  let ok: Awaited<ReturnType<typeof check>> | undefined;
  for (let i = 0; i < 50 && ok?.byName["handshake (exit's view)"]?.verdict !== "pass"; i++) {
    await new Promise((res) => setTimeout(res, 200));
    ok = await check();
  }
  assert.equal(ok!.byName["handshake (exit's view)"].verdict, "pass", JSON.stringify(ok!.results));
  assert.match(
    ok!.byName["handshake (exit's view)"].evidence,
    /^latest handshake \d+ s ago from 10\.77\.0\.1:\d+$/,
  );

  // Each broken part of the runbook is named, with its fix.
  vps.inNs("sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward");
  const noFwd = await check();
  assert.equal(noFwd.code, 1);
  assert.equal(noFwd.byName["IP forwarding"].verdict, "fail");
  assert.match(
    noFwd.byName["IP forwarding"].fix!,
    /sysctl -w net\.ipv4\.ip_forward=1 now; wg-egress exit install --config \S+ makes it stick/,
  );
  vps.inNs("ip", "route", "del", "default");
  vps.inNs("ip", "link", "add", "wgetest-alt", "type", "veth", "peer", "name", "wgetest-alt1");
  vps.inNs("ip", "link", "set", "wgetest-alt", "up");
  vps.inNs("ip", "route", "add", "default", "dev", "wgetest-alt");
  const wrongIf = await check();
  assert.equal(wrongIf.byName.masquerade.verdict, "fail");
  assert.match(
    wrongIf.byName.masquerade.evidence,
    /the default route leaves via wgetest-alt, but the masquerade is on wgetest-ssh1/,
  );
  assert.match(wrongIf.byName.masquerade.fix!, /set exit\.publicInterface: wgetest-alt/);
  vps.inNs("ip", "link", "del", "wgetest-alt");
  vps.inNs("ip", "route", "add", "default", "via", vps.hostAddr);
  vps.inNs("wg", "set", WG_IF, "peer", publicKeyOf(generatePrivateKey()), "allowed-ips", "10.100.0.9/32");
  assert.equal((await check()).byName["gateway peer"].verdict, "warn", "a stranger among the peers");
  vps.inNs("nft", "delete", "table", "inet", "wg-egress-exit");
  const noNft = await check();
  assert.deepEqual([noNft.byName.masquerade.verdict, noNft.byName.firewall.verdict], ["fail", "fail"]);
  assert.match(noNft.byName.firewall.fix!, /^wg-egress exit install --config /);

  // exit install repairs all of it; the check is green again but for the resolver (no DNS in here).
  assert.equal((await cli(["exit", "install", "-c", config])).code, 0);
  const repaired = await check();
  assert.deepEqual(
    repaired.results.filter((x) => x.verdict !== "pass").map((x) => x.name),
    ["resolver"],
  );
  assert.equal(repaired.code, 0);
  const down = await cli([
    "exit",
    "check",
    "-c",
    config,
    "--ssh",
    "root@10.77.0.3",
    "--ssh-option",
    "ConnectTimeout=2",
  ]);
  assert.equal(down.code, 1);
  assert.match(down.stdout, /^FAIL\s+ssh\s+ssh to root@10\.77\.0\.3 port 22 failed/m);
  assert.match(down.stdout, /fix: check exit\.ssh\.target/);
});
