import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { expectedChains, NFT_TABLE } from "../../src/gateway/nft.js";
import { RUNTIME_DIR } from "../../src/gateway/runtime.js";
import { findUserspacePid } from "../../src/gateway/wireguard.js";
import { generatePrivateKey, publicKeyOf } from "../../src/wireguard/keys.js";
import { MAIN } from "../support/cli.js";
import { dataPath } from "../support/datapath.js";
import { freshNamespace } from "../support/netns.js";
import { tempDir } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";

before(() => requireTools("wg", "wireguard-go", "nft", "setpriv"));

/**
 * The real `gateway up/down/status` in a throwaway namespace full of decoys: up twice changes nothing,
 * repairs partial state, routes the proxy's traffic by client subnet, down keeps the kill switch, and
 * down --purge restores exactly what was there before (src_valid_mark included).
 *
 *   l0 10.1.0.1/24 (the LAN: the proxy's client subnet)   d0 192.0.2.1/24, 2001:db8::1/64 (the WAN, default routes)
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
    JSON.stringify({
      gateway: { interface: IF, privateKeyFile: keyFile, peer, ...gateway },
      proxy: { listen: ["10.1.0.1:1080"] },
    }),
  );
  return file;
}

/** Runs the rest of the command line as the proxy's uid. */
const AS_PROXY = ["setpriv", "--reuid=400", "--regid=400", "--clear-groups"];

/** Prints the error code of a TCP connect to `ip` as uid 400 (or "connected"/"timeout"). */
const connectAsProxy = (ip: string) =>
  spawnSync(
    "ip",
    [
      "netns",
      "exec",
      NS,
      ...AS_PROXY,
      process.execPath,
      "-e",
      `const s = require("net").connect(80, ${JSON.stringify(ip)}); s.on("connect", () => { console.log("connected"); process.exit(0); }); s.on("error", (e) => console.log(e.code)); setTimeout(() => { console.log("timeout"); process.exit(0); }, 5000).unref();`,
    ],
    { encoding: "utf8", timeout: 10_000 },
  ).stdout.trim();

/** The device the proxy's (uid 400) route lookup picks: routing alone, whatever nft does. */
const proxyRoute = (ip: string) => /\bdev (\S+)/.exec(sh(["ip", "route", "get", ip, "uid", "400"]))?.[1];

const srcValidMark = () => sh(["cat", "/proc/sys/net/ipv4/conf/all/src_valid_mark"]).trim();
const status = () => JSON.parse(cli(["gateway", "status", "--json"]).stdout);

/** Everything `down --purge` must leave as it found it (IPv6 link-local routes come and go by themselves). */
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
  freshNamespace(NS);
  for (const argv of [
    ["ip", "link", "add", "l0", "type", "veth", "peer", "name", "l1"],
    ["ip", "address", "add", "10.1.0.1/24", "dev", "l0"],
    ...["l0", "l1"].map((d) => ["ip", "link", "set", d, "up"]),
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
      "2001:db8::/32",
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

test("up twice, repair; down keeps the kill switch; --purge restores exactly what was there", async () => {
  const pristine = snapshot();
  assert.equal(srcValidMark(), "0");
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
  const s = JSON.parse(st.stdout);
  assert.equal(s.present, true);
  assert.ok(["kernel", "userspace"].includes(s.implementation));
  assert.equal(s.killSwitchArmed, true);
  assert.deepEqual(s.killSwitchMissing, []);
  assert.deepEqual(s.route, { tunnel4: true, tunnel6: false, unreachable4: true, unreachable6: true });
  assert.equal(s.verdict, "down");
  assert.equal(s.agent, null);

  // Routing alone: the client subnet stays on the LAN, the WAN's own subnet and the rest go into the tunnel.
  assert.equal(proxyRoute("10.1.0.7"), "l0");
  assert.equal(proxyRoute("192.0.2.99"), IF, "the WAN's connected subnet");
  assert.equal(proxyRoute("198.18.0.1"), IF);
  assert.equal(
    /\bdev (\S+)/.exec(sh(["ip", "route", "get", "192.0.2.99"]))?.[1],
    "d0",
    "others keep the WAN",
  );
  // No tunnel IPv6 address: the proxy user's IPv6 fails at once (not after a timeout), also to the
  // WAN's own IPv6 subnet, instead of taking the host's IPv6 routes.
  for (const ip of ["2001:db8:1::99", "2001:db8::99"])
    assert.match(connectAsProxy(ip), /^(ENETUNREACH|EHOSTUNREACH|EACCES)$/, ip);
  assert.match(sh(["nft", "list", "counter", "ip6", "witness", "leaked"]), /packets 0 /);

  // Partial state: tunnel route gone with a link flap, one rule lost, wg socket marked with the egress
  // mark, and the rule an older version added (every connected route via main) to be removed.
  sh(["ip", "link", "set", IF, "down"]);
  sh(["ip", "-6", "rule", "del", "priority", "5184", "uidrange", "400-400", "lookup", "51820"]);
  sh(["wg", "set", IF, "fwmark", "0xca6c"]);
  sh([
    "ip",
    "rule",
    "add",
    "priority",
    "5183",
    "uidrange",
    "400-400",
    "lookup",
    "main",
    "suppress_prefixlength",
    "0",
  ]);
  const repair = cli(["gateway", "up"]);
  assert.equal(repair.status, 0, repair.stderr);
  assert.match(repair.stdout, /5 change\(s\)/);
  assert.match(sh(["ip", "route", "show", "table", "51820"]), new RegExp(`default dev ${IF}`));
  assert.match(sh(["wg", "show", IF, "fwmark"]), /off/);
  assert.doesNotMatch(sh(["ip", "rule", "show"]), /suppress_prefixlength/);
  assert.equal(snapshot(), afterUp);

  // down: the tunnel goes, the kill switch stays (and src_valid_mark with it).
  const down = cli(["gateway", "down"]);
  assert.equal(down.status, 0, down.stderr);
  assert.match(down.stdout, /the kill switch stays/);
  const afterDown = status();
  assert.equal(afterDown.present, false);
  assert.equal(afterDown.killSwitchArmed, true);
  assert.equal(findUserspacePid(IF), null);
  assert.ok(!existsSync(`/var/run/wireguard/${IF}.sock`));
  assert.match(
    connectAsProxy("192.0.2.99"),
    /^(ENETUNREACH|EHOSTUNREACH|EACCES)$/,
    "fails closed after down",
  );
  assert.equal(srcValidMark(), "1");

  // --purge is refused while a process of the proxy's uid runs here; nothing changes.
  const proxy = spawn("ip", ["netns", "exec", NS, ...AS_PROXY, "sleep", "30"]);
  try {
    await sleep(300);
    const refused = cli(["gateway", "down", "--purge"]);
    assert.equal(refused.status, 1, refused.stderr);
    assert.match(refused.stderr, /process\(es\) of uid 400 still run here .*sleep 30.*nothing was changed/);
    assert.equal(status().killSwitchArmed, true);
  } finally {
    proxy.kill();
    await new Promise((r) => proxy.once("exit", r));
  }
  const purge = cli(["gateway", "down", "--purge"]);
  assert.equal(purge.status, 0, purge.stderr);
  assert.equal(snapshot(), pristine, "down --purge must restore exactly the state before up");
  assert.equal(srcValidMark(), "0", "src_valid_mark restored");
  assert.ok(!existsSync(join(RUNTIME_DIR, `${IF}.json`)));
  assert.equal(cli(["gateway", "down", "--purge"]).stdout, "gateway down: 0 change(s) applied\n");
});

test("each chain of the ruleset deleted in turn: status says NOT armed, up repairs it", () => {
  assert.equal(cli(["gateway", "up"]).status, 0);
  const p = dataPath({ ifname: IF });
  for (const { name } of expectedChains(p)) {
    sh(["nft", "delete", "chain", "inet", NFT_TABLE, name]);
    const broken = cli(["gateway", "status"]);
    assert.match(broken.stdout, new RegExp(`kill switch: +NOT armed \\(missing: chain ${name}\\)`), name);
    const up = cli(["gateway", "up"]);
    assert.equal(up.stdout, "gateway up: 1 change(s) applied\n", name);
    assert.equal(status().killSwitchArmed, true, name);
  }
  assert.equal(cli(["gateway", "down", "--purge"]).status, 0);
});

test("up --killswitch-only arms the kill switch without any tunnel", () => {
  const r = cli(["gateway", "up", "--killswitch-only"]);
  assert.equal(r.status, 0, r.stderr);
  const s = status();
  assert.equal(s.present, false);
  assert.equal(s.killSwitchArmed, true);
  assert.match(connectAsProxy("192.0.2.99"), /^(ENETUNREACH|EHOSTUNREACH|EACCES)$/);
  assert.equal(cli(["gateway", "down", "--purge"]).status, 0);
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
