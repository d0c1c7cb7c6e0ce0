import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { findUserspacePid } from "../../src/gateway/wireguard.js";
import { generatePrivateKey, publicKeyOf } from "../../src/wireguard/keys.js";
import { MAIN } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";

before(() => requireTools("wg", "wireguard-go", "nft", "setpriv"));

/**
 * The real `gateway up/down/status` in a throwaway namespace full of decoys: up twice changes nothing,
 * repairs partial state, and down restores exactly what was there before.
 */

const NS = "wgetest-gw";
const IF = "wgetest-gw0"; // wireguard-go sockets are host-wide (finding 5): a name nothing else uses
const dir = tempDir("wgetest-gw-");

const sh = (argv: string[]) => execFileSync("ip", ["netns", "exec", NS, ...argv], { encoding: "utf8" });
function cli(args: string[], opts: { config?: string; prefix?: string[] } = {}) {
  const argv = [
    ...(opts.prefix ?? []),
    process.execPath,
    MAIN,
    ...args,
    "--config",
    opts.config ?? join(dir, "config.yaml"),
  ];
  return spawnSync("ip", ["netns", "exec", NS, ...argv], { encoding: "utf8", timeout: 30_000 });
}

function writeConfig(
  name: string,
  gateway: Record<string, unknown>,
  key = generatePrivateKey(),
  mode = 0o600,
): string {
  const keyFile = join(dir, `${name}.key`);
  writeFileSync(keyFile, `${key}\n`);
  chmodSync(keyFile, mode);
  const file = join(dir, `${name}.yaml`);
  const peer = { publicKey: publicKeyOf(generatePrivateKey()), endpoint: "192.0.2.10:51820" };
  writeFileSync(
    file,
    JSON.stringify({ gateway: { interface: IF, privateKeyFile: keyFile, peer, ...gateway } }),
  );
  return file;
}

/** Prints the error code of a TCP connect to a documentation IPv6 address (or "connected"). */
const CONNECT_V6 = `const s = require("net").connect(80, "2001:db8:1::99"); s.on("connect", () => { console.log("connected"); process.exit(0); }); s.on("error", (e) => console.log(e.code)); setTimeout(() => { console.log("timeout"); process.exit(0); }, 5000).unref();`;

/** Everything `down` must leave as it found it (IPv6 link-local routes come and go by themselves). */
const snapshot = () =>
  (
    ["-4", "-6"]
      .map((f) => sh(["ip", f, "rule", "show"]) + sh(["ip", f, "route", "show", "table", "all"]))
      .join("") + sh(["nft", "list", "ruleset"])
  )
    .split("\n")
    .filter((l) => !l.includes("fe80:"))
    .join("\n");

before(() => {
  spawnSync("ip", ["netns", "del", NS]);
  execFileSync("ip", ["netns", "add", NS]);
  for (const argv of [
    ["ip", "link", "set", "lo", "up"],
    ["ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"],
    ["ip", "address", "add", "192.0.2.1/24", "dev", "d0"],
    ["ip", "link", "set", "d0", "up"],
    ["ip", "link", "set", "d1", "up"],
    ["ip", "route", "add", "default", "via", "192.0.2.254"],
    ["ip", "address", "add", "2001:db8::1/64", "dev", "d0", "nodad"],
    ["ip", "-6", "route", "add", "default", "via", "2001:db8::fffe"],
    ["ip", "rule", "add", "priority", "5182", "fwmark", "0x1", "lookup", "100"],
    ["ip", "rule", "add", "priority", "100", "fwmark", "0xca6c", "lookup", "51820"],
    ["ip", "-6", "rule", "add", "priority", "5184", "uidrange", "401-401", "lookup", "51820"],
    ["ip", "route", "add", "10.99.0.0/24", "dev", "d0", "table", "51820"],
    ["nft", "add", "table", "inet", "decoy"],
    ["nft", "add", "chain", "inet", "decoy", "out", "{ type filter hook output priority 0; }"],
    ["nft", "add", "table", "ip", "wg-egress"],
    // Also a witness: IPv6 the proxy user sends must never leave through the host's own IPv6 route.
    ["nft", "add", "table", "ip6", "witness"],
    ["nft", "add", "counter", "ip6", "witness", "leaked"],
    ["nft", "add", "chain", "ip6", "witness", "post", "{ type filter hook postrouting priority 100; }"],
    [
      "nft",
      "add",
      "rule",
      "ip6",
      "witness",
      "post",
      "ip6",
      "daddr",
      "2001:db8:1::99",
      "counter",
      "name",
      "leaked",
    ],
  ])
    sh(argv);
  writeConfig("config", {});
});

after(() => {
  const pid = findUserspacePid(IF);
  if (pid !== null) process.kill(pid, "SIGTERM");
  spawnSync("ip", ["netns", "del", NS]);
});

test("up twice, repair, down: only our objects change", () => {
  const pristine = snapshot();
  const dry = cli(["gateway", "up", "--dry-run"]);
  assert.equal(dry.status, 0, dry.stderr);
  assert.match(dry.stdout, /nft -f - <<'EOF'\ntable inet wg-egress\n/);
  assert.doesNotMatch(dry.stdout, /PrivateKey = [A-Za-z0-9+/]{43}=/, "dry-run must not print the key");
  assert.equal(snapshot(), pristine, "--dry-run changed something");

  const up = cli(["gateway", "up"]);
  assert.equal(up.status, 0, up.stderr);
  assert.match(up.stdout, /change\(s\) applied/);
  const afterUp = snapshot();
  const again = cli(["gateway", "up"]);
  assert.equal(again.status, 0, again.stderr);
  assert.equal(again.stdout, "gateway up: nothing to change\n");
  assert.equal(snapshot(), afterUp);
  assert.match(cli(["gateway", "up", "--dry-run"]).stdout, /nothing to do/);

  const st = cli(["gateway", "status", "--json"]);
  assert.equal(st.status, 1, "no handshake possible here: verdict down, exit 1");
  const status = JSON.parse(st.stdout);
  assert.equal(status.present, true);
  assert.ok(["kernel", "userspace"].includes(status.implementation));
  assert.equal(status.killSwitchArmed, true);
  assert.deepEqual(status.route, { tunnel4: true, tunnel6: false, unreachable4: true, unreachable6: true });
  assert.equal(status.verdict, "down");

  // No tunnel IPv6 address: the proxy user's IPv6 fails at once instead of taking the host's IPv6 route.
  const v6 = spawnSync(
    "ip",
    [
      "netns",
      "exec",
      NS,
      "setpriv",
      "--reuid=400",
      "--regid=400",
      "--clear-groups",
      process.execPath,
      "-e",
      CONNECT_V6,
    ],
    { encoding: "utf8", timeout: 10_000 },
  );
  assert.match(v6.stdout, /^(ENETUNREACH|EHOSTUNREACH|EACCES)$/m, v6.stdout + v6.stderr);
  assert.match(sh(["nft", "list", "counter", "ip6", "witness", "leaked"]), /packets 0 /);

  // Partial state: tunnel route gone with a link flap, one rule lost, wg socket marked with the egress mark.
  sh(["ip", "link", "set", IF, "down"]);
  sh([
    "ip",
    "-6",
    "rule",
    "del",
    "priority",
    "5183",
    "uidrange",
    "400-400",
    "lookup",
    "main",
    "suppress_prefixlength",
    "0",
  ]);
  sh(["wg", "set", IF, "fwmark", "0xca6c"]);
  const repair = cli(["gateway", "up"]);
  assert.equal(repair.status, 0, repair.stderr);
  assert.match(repair.stdout, /4 change\(s\)/);
  assert.match(sh(["ip", "route", "show", "table", "51820"]), new RegExp(`default dev ${IF}`));
  assert.match(sh(["wg", "show", IF, "fwmark"]), /off/);

  const down = cli(["gateway", "down"]);
  assert.equal(down.status, 0, down.stderr);
  assert.equal(snapshot(), pristine, "down must restore exactly the state before up");
  assert.equal(findUserspacePid(IF), null);
  assert.ok(!existsSync(`/var/run/wireguard/${IF}.sock`));
  assert.equal(cli(["gateway", "down"]).stdout, "gateway down: 0 change(s) applied\n");
});

test("down --keep-killswitch removes only the interface", () => {
  assert.equal(cli(["gateway", "up"]).status, 0);
  const down = cli(["gateway", "down", "--keep-killswitch"]);
  assert.equal(down.status, 0, down.stderr);
  const st = JSON.parse(cli(["gateway", "status", "--json"]).stdout);
  assert.equal(st.present, false);
  assert.equal(st.killSwitchArmed, true);
  assert.equal(cli(["gateway", "down"]).status, 0);
  assert.equal(JSON.parse(cli(["gateway", "status", "--json"]).stdout).killSwitchArmed, false);
});

test("clear one-line errors, nothing applied", async () => {
  const pristine = snapshot();
  const oneLine = (r: ReturnType<typeof cli>, code: number, re: RegExp) => {
    assert.equal(r.status, code, r.stderr);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, re);
  };
  oneLine(
    cli(["gateway", "up"], { prefix: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] }),
    1,
    /run it as root/,
  );
  oneLine(
    cli(["gateway", "up"], { config: writeConfig("badkey", {}, "not-a-key") }),
    2,
    /does not hold a WireGuard private key/,
  );
  oneLine(
    cli(["gateway", "up"], { config: writeConfig("open", {}, generatePrivateKey(), 0o644) }),
    2,
    /readable by other users: chmod 600/,
  );
  oneLine(
    cli(["gateway", "up"], { config: writeConfig("user", { proxyUser: "no-such-user-wge" }) }),
    2,
    /unknown user "no-such-user-wge"/,
  );
  oneLine(
    cli(["gateway", "up"], { prefix: ["env", "PATH=/nonexistent"] }),
    1,
    /" not found: install the (iproute2|wireguard-tools|nftables) package/,
  );

  const holder = spawn("ip", [
    "netns",
    "exec",
    NS,
    process.execPath,
    "-e",
    "require('dgram').createSocket('udp4').bind(51999, () => console.log('bound'))",
  ]);
  try {
    await new Promise((resolve) => holder.stdout.once("data", resolve));
    oneLine(
      cli(["gateway", "up"], { config: writeConfig("port", { listenPort: 51999 }) }),
      1,
      /UDP port 51999 .* already in use/,
    );
  } finally {
    holder.kill();
    await sleep(100);
  }
  assert.equal(snapshot(), pristine);
});
