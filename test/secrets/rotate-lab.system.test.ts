import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parse, stringify } from "yaml";
import { parseConfig } from "../../src/config/load.js";
import { PROBE_JS } from "../../src/lab/processes.js";
import { ADDR, CONFIG_FILE, EXIT_IF, LINE_PORT, NS, PROXY_PORT, STATE_DIR } from "../../src/lab/topology.js";
import { createAgeIdentity, openSecretsStore } from "../../src/secrets/store.js";
import { run } from "../../src/util/run.js";
import { publicKeyOf } from "../../src/wireguard/keys.js";
import { MAIN } from "../support/cli.js";
import { acquireLabLock } from "../support/lablock.js";
import { waitFor } from "../support/poll.js";
import { startSshd } from "../support/sshd.js";
import { tempDir } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";

/**
 * The IRC case in the lab (`wg-egress lab up`): a connection from the pod through the proxy to the lab's line
 * server sits idle while `secrets rotate` replaces both sides' keys; the server's line must still arrive
 * afterwards. The lab's exit gets an sshd (as root, in its namespace, on its public address) so rotate can
 * reach it the way it reaches a VPS. A ping over the tunnel every 10 ms measures the interruption.
 */

const IDLE_SECONDS = 40;
const PING_INTERVAL_MS = 10;

let lock: { release: () => void } | undefined;
let sshd: ChildProcess | undefined;
const dir = tempDir("wgetest-rotlab-");

const inNs = (ns: string, argv: string[], timeoutMs = 60_000) =>
  run("ip", ["netns", "exec", ns, ...argv], { allowFail: true, timeoutMs });
const lab = (cmd: "up" | "down") =>
  run(process.execPath, [MAIN, "--log-level", "warn", "lab", cmd], { allowFail: true, timeoutMs: 180_000 });

before(async () => {
  requireTools("flock", "sshd", "ssh", "ssh-keygen", "ping", "ss", "wg", "wireguard-go", "nft", "setpriv");
  lock = await acquireLabLock();
  const up = await lab("up");
  assert.equal(up.code, 0, `lab up: ${up.stderr}`);
  // sshd in the exit's namespace, on its public address (the exit's firewall admits SSH).
  const ssh = await startSshd(NS.exit, ADDR.exitPublic, dir);
  sshd = ssh.sshd;
  // The lab's keys into a store, and the lab's own config told where the store and the exit's SSH are.
  const raw = parse(readFileSync(CONFIG_FILE, "utf8"));
  raw.secrets = { file: join(dir, "secrets.age"), identityFile: join(dir, "age.key") };
  raw.exit.ssh = {
    target: `root@${ADDR.exitPublic}`,
    identityFile: ssh.identityFile,
    options: ssh.options,
    dir: `${STATE_DIR}/exit`,
    system: false,
  };
  writeFileSync(CONFIG_FILE, stringify(raw), { mode: 0o644 });
  const config = parseConfig(raw, CONFIG_FILE);
  await createAgeIdentity(config.secrets.identityFile);
  const exitKey = /^PrivateKey = (\S+)$/m.exec(readFileSync(`${STATE_DIR}/exit/${EXIT_IF}.conf`, "utf8"))![1];
  await openSecretsStore(config.secrets).write({
    exit: { privateKey: exitKey },
    gateway: { privateKey: readFileSync(config.gateway.privateKeyFile, "utf8").trim() },
  });
  chmodSync(dir, 0o755);
});

after(async () => {
  sshd?.kill("SIGTERM");
  if (lock) {
    await lab("down");
    lock.release();
  }
});

/** Longest stretch without a ping reply, and how many were lost, from `ping -D` output. */
function gaps(output: string): { maxGapMs: number; lost: number; replies: number } {
  const replies = [...output.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)/gm)].map((m) => ({
    t: Number(m[1]) * 1000,
    seq: Number(m[2]),
  }));
  let maxGapMs = 0;
  for (let i = 1; i < replies.length; i++) maxGapMs = Math.max(maxGapMs, replies[i].t - replies[i - 1].t);
  const sent = Number(/(\d+) packets transmitted/.exec(output)?.[1] ?? 0);
  return { maxGapMs, lost: sent - replies.length, replies: replies.length };
}

test("an idle connection through the proxy (the IRC case) survives a key rotation of both sides", {
  timeout: 180_000,
}, async (t) => {
  const showKeys = async () =>
    (await inNs(NS.gw, [process.execPath, MAIN, "secrets", "show", "-c", CONFIG_FILE])).stdout;
  const before = await showKeys();
  // The IRC-like session: connected through the proxy, then silent until the server speaks.
  const idle = inNs(
    NS.pod,
    [
      process.execPath,
      PROBE_JS,
      "idle",
      ADDR.gwLan,
      String(PROXY_PORT),
      ADDR.server,
      String(LINE_PORT),
      String(IDLE_SECONDS),
    ],
    (IDLE_SECONDS + 40) * 1000,
  );
  await waitFor("the idle connection at the server, from the exit's address", 15_000, async () => {
    const ss = await inNs(NS.inet, ["ss", "-Htn", "state", "established", `sport = :${LINE_PORT}`]);
    return ss.stdout.includes(`${ADDR.exitPublic}:`);
  });
  // The tunnel's data path, measured while keys change: a ping to the exit's tunnel address every 10 ms.
  const ping = inNs(
    NS.gw,
    ["ping", "-D", "-n", "-i", String(PING_INTERVAL_MS / 1000), "-w", "25", ADDR.exitTunnel],
    40_000,
  );
  await new Promise((r) => setTimeout(r, 3000));
  const rotation = await inNs(
    NS.gw,
    [process.execPath, MAIN, "secrets", "rotate", "-c", CONFIG_FILE],
    120_000,
  );
  assert.equal(rotation.code, 0, `${rotation.stdout}\n${rotation.stderr}`);
  const pinged = await ping;
  const line = await idle;
  assert.equal(
    line.stdout.trim(),
    "PING wgelab",
    `after ${IDLE_SECONDS} s idle across the rotation: ${line.stdout}`,
  );
  // Both sides really run new keys, and the proxy still leaves through the exit.
  const after = await showKeys();
  const pub = (s: string, side: string) => new RegExp(`${side} public key:\\s+(\\S+)`).exec(s)![1];
  assert.notEqual(pub(after, "exit"), pub(before, "exit"));
  assert.notEqual(pub(after, "gateway"), pub(before, "gateway"));
  const exitWg = (await inNs(NS.exit, ["wg", "show", EXIT_IF, "dump"])).stdout.trim().split("\n");
  assert.equal(exitWg[0].split("\t")[1], pub(after, "exit"));
  assert.deepEqual(
    exitWg.slice(1).map((l) => l.split("\t")[0]),
    [pub(after, "gateway")],
  );
  assert.equal(publicKeyOf(readFileSync(`${STATE_DIR}/gateway.key`, "utf8").trim()), pub(after, "gateway"));
  // The lab's config names the gateway's key for the exit too: it follows, or a later `exit install`
  // would put the old key back on the exit.
  const cfg = parse(readFileSync(CONFIG_FILE, "utf8"));
  assert.deepEqual(
    [cfg.exit.gatewayPublicKey, cfg.gateway.peer.publicKey],
    [pub(after, "gateway"), pub(after, "exit")],
  );
  const seen = await inNs(NS.pod, [
    "curl",
    "-sS",
    "--max-time",
    "5",
    "--socks5",
    `${ADDR.gwLan}:${PROXY_PORT}`,
    `http://${ADDR.server}/`,
  ]);
  assert.equal(seen.stdout.trim(), ADDR.exitPublic);
  const g = gaps(pinged.stdout);
  assert.ok(g.replies > 100, `ping ran: ${pinged.stdout.slice(-300)}`);
  const steps = rotation.stdout
    .split("\n")
    .filter((l) => /after [\d.]+ s/.test(l))
    .map((l) => /^(\d)\..*after ([\d.]+ s)/.exec(l)!.slice(1).join(" took "));
  t.diagnostic(
    `rotation step ${steps.join(", step ")} (SSH included); tunnel ping every ${PING_INTERVAL_MS} ms: longest gap ${g.maxGapMs.toFixed(0)} ms, ${g.lost} of ${g.replies + g.lost} lost; the idle connection got its line after ${IDLE_SECONDS} s`,
  );
});
