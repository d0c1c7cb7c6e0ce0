import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parse } from "yaml";
import { run } from "../../src/util/run.js";
import { publicKeyOf } from "../../src/wireguard/keys.js";
import { cli, MAIN } from "../support/cli.js";
import { writeConfig } from "../support/config.js";
import { type SshExit, startSshExit, startWgPeer } from "../support/sshd.js";
import { requireTools } from "../support/tools.js";

/**
 * `secrets rotate` against a real exit: sshd as root in a namespace this test creates (10.78.0.2), the exit
 * set up there by `exit install`, and a live gateway end (wireguard-go) in the host namespace. Rotation
 * must keep both sides in step (make-before-break), roll back when the new key gets no handshake, and
 * refuse before changing anything when the store cannot be written.
 */

const WG_IF = "wgetest-rx0";
const GW_IF = "wgetest-rg0";

let vps: SshExit;
let dir = "";
let config = "";

before(async () => {
  requireTools("sshd", "ssh", "ssh-keygen", "wg", "wireguard-go", "nft", "unshare", "mount");
  vps = await startSshExit("rot", 78, [WG_IF, GW_IF]);
  dir = vps.dir;
  // The store in its own directory, so a test can make just that read-only.
  mkdirSync(join(dir, "store"));
  config = writeConfig(dir, {
    secrets: { file: join(dir, "store", "secrets.age"), identityFile: join(dir, "store", "age.key") },
    exit: { interface: WG_IF, publicInterface: vps.nsIf, ssh: vps.ssh },
    gateway: {
      interface: GW_IF,
      peer: { allowedIps: ["10.100.0.1/32"], persistentKeepalive: 1, endpoint: `${vps.addr}:51820` },
    },
  });
  const init = await cli(["secrets", "init", "-c", config]);
  assert.equal(init.code, 0, init.stderr);
  const install = await cli(["exit", "install", "-c", config]);
  assert.equal(install.code, 0, install.stderr);
});

after(() => vps?.stop([WG_IF, GW_IF]));

const keysOf = (dump: string) => {
  const [iface, ...peers] = dump.trim().split("\n");
  return { pub: iface.split("\t")[1], peers: peers.map((l) => l.split("\t")[0]) };
};
const exitSide = () => keysOf(vps.inNs("wg", "show", WG_IF, "dump"));
const gatewaySide = () => keysOf(execFileSync("wg", ["show", GW_IF, "dump"], { encoding: "utf8" }));
const stored = async () => {
  const show = (await cli(["secrets", "show", "-c", config])).stdout;
  return {
    exit: /exit public key:\s+(\S+)/.exec(show)![1],
    gateway: /gateway public key:\s+(\S+)/.exec(show)![1],
  };
};
const fileKeys = () => ({
  gatewayKeyFile: publicKeyOf(readFileSync(join(dir, "gateway.key"), "utf8").trim()),
  peer: parse(readFileSync(config, "utf8")).gateway.peer.publicKey as string | undefined,
});

/** Waits (bounded) for a handshake on the gateway end at or after `since` (UNIX seconds). */
async function handshake(since: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const hs = execFileSync("wg", ["show", GW_IF, "latest-handshakes"], { encoding: "utf8" });
    if (hs.split("\n").some((l) => Number(l.split("\t")[1]) >= since)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no handshake within 10 s:\n${execFileSync("wg", ["show", GW_IF], { encoding: "utf8" })}`);
}
const now = () => Math.floor(Date.now() / 1000);

test("with the gateway not running here, rotate updates the exit in one step and the files follow", async () => {
  const before = await stored();
  const r = await cli(["secrets", "rotate", "-c", config]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wgetest-rg0 is not running here/);
  const after = await stored();
  assert.notEqual(after.exit, before.exit);
  assert.notEqual(after.gateway, before.gateway);
  assert.deepEqual(exitSide(), { pub: after.exit, peers: [after.gateway] });
  assert.deepEqual(fileKeys(), { gatewayKeyFile: after.gateway, peer: after.exit });
  assert.equal(statSync(join(dir, "gateway.key")).mode & 0o777, 0o600);
});

test("with the gateway up: make-before-break on both keys, each side in step, the tunnel handshakes", {
  timeout: 120_000,
}, async () => {
  // The gateway end as `gateway up` would run it: the key file and the config's peer.
  const { peer } = fileKeys();
  const started = now();
  startWgPeer(GW_IF, join(dir, "gateway.key"), peer!, `${vps.addr}:51820`);
  await handshake(started);
  const before = await stored();
  const rotatedAt = now();
  const r = await cli(["secrets", "rotate", "-c", config, "--log-level", "debug"]);
  assert.equal(r.code, 0, r.stderr);
  const after = await stored();
  assert.notEqual(after.exit, before.exit);
  assert.notEqual(after.gateway, before.gateway);
  assert.deepEqual(exitSide(), { pub: after.exit, peers: [after.gateway] }, "old gateway peer removed");
  assert.deepEqual(gatewaySide(), { pub: after.gateway, peers: [after.exit] }, "the running gateway follows");
  assert.deepEqual(fileKeys(), { gatewayKeyFile: after.gateway, peer: after.exit });
  await handshake(rotatedAt);
  // The exit's saved config (what its boot unit re-applies) has the new keys too.
  const saved = readFileSync(join(vps.ssh.dir, `${WG_IF}.conf`), "utf8");
  assert.match(saved, new RegExp(`PublicKey = ${after.gateway.replace(/[+/]/g, "\\$&")}`));
  // In order: the gateway key make-before-break, then the exit key with the gateway following.
  assert.match(
    r.stdout,
    /^checked: .* wgetest-rg0 is up with the stored keys\n1\. gateway key \S+ → \S+: the exit took it as a second peer, the gateway switched, handshake and switch-over after [\d.]+ s;.*\n {3}stored .*\n2\. exit key \S+ → \S+: the exit switched and saved it, the gateway followed; handshake after [\d.]+ s\n {3}stored/m,
  );
  const secrets = await Promise.all(
    ["exit.privateKey", "gateway.privateKey"].map(async (f) =>
      (await cli(["secrets", "show", "-c", config, "--reveal", f])).stdout.trim(),
    ),
  );
  for (const s of secrets) assert.ok(!r.stdout.includes(s) && !r.stderr.includes(s), "no private key logged");
});

test("no handshake with the new gateway key: both sides go back to the old keys, nothing is stored", {
  timeout: 120_000,
}, async () => {
  const before = await stored();
  const files = fileKeys();
  // UDP to the exit's WireGuard port is dropped: the new key can never handshake.
  const block = `table inet wgetest-block {\n  chain in {\n    type filter hook input priority -10; policy accept;\n    udp dport 51820 drop\n  }\n}\n`;
  execFileSync("ip", ["netns", "exec", vps.ns, "nft", "-f", "-"], { input: block });
  let r: Awaited<ReturnType<typeof cli>>;
  try {
    r = await cli(["secrets", "rotate", "-c", config], { timeoutMs: 90_000 });
  } finally {
    execFileSync("ip", ["netns", "exec", vps.ns, "nft", "delete", "table", "inet", "wgetest-block"]);
  }
  assert.equal(r.code, 1, r.stdout);
  assert.match(
    r.stderr,
    /^wg-egress: gateway key rotation failed: .*no handshake from the new gateway key within 20 s.*; rolled back: both sides keep the old keys, the store is unchanged$/m,
  );
  assert.deepEqual(await stored(), before);
  assert.deepEqual(fileKeys(), files);
  assert.deepEqual(exitSide(), { pub: before.exit, peers: [before.gateway] });
  assert.deepEqual(gatewaySide(), { pub: before.gateway, peers: [before.exit] });
  const unblocked = now();
  await handshake(unblocked);
});

test("a store that cannot be written: rotate refuses before changing anything", async () => {
  const before = await stored();
  const files = fileKeys();
  const store = join(dir, "store");
  // A read-only bind mount of the store's directory, only for this one command (its own mount namespace).
  const r = await run(
    "unshare",
    [
      "-m",
      "sh",
      "-c",
      'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"',
      "sh",
      store,
      process.execPath,
      MAIN,
      "secrets",
      "rotate",
      "-c",
      config,
    ],
    { allowFail: true, timeoutMs: 60_000 },
  );
  assert.equal(r.code, 1, r.stdout);
  assert.match(
    r.stderr,
    /^wg-egress: cannot write \S+secrets\.age: .*; nothing was rotated \(fix the store first\)$/m,
  );
  assert.doesNotMatch(r.stderr, /new keys are in/);
  assert.deepEqual(await stored(), before);
  assert.deepEqual(fileKeys(), files);
  assert.deepEqual(exitSide(), { pub: before.exit, peers: [before.gateway] });
  assert.equal(spawnSync("findmnt", [store]).status === 0, false, "the bind mount stayed in its namespace");
});
