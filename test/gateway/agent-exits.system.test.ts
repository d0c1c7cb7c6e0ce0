import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { findUserspacePid } from "../../src/gateway/wireguard.js";
import { generatePrivateKey, publicKeyOf } from "../../src/wireguard/keys.js";
import { MAIN } from "../support/cli.js";
import { type Daemon, freshNamespace, startIn, stop } from "../support/netns.js";
import { waitFor } from "../support/poll.js";
import { tempDir } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";

before(() => requireTools("wg", "wireguard-go", "nft"));

/**
 * `gateway run` with two exits, one of which cannot start (its key file is missing): the other exit is
 * brought up and repaired all the same, and the broken one starts by itself once its key appears. Then
 * `gateway status` and `doctor` report both exits (each under its name), and --exit narrows them.
 */

const NS = "wgetest-ax";
const IFS = ["wgetest-ax1", "wgetest-ax2"]; // wireguard-go sockets are host-wide: names nothing else uses
const dir = tempDir("wgetest-ax-");
const config = join(dir, "config.yaml");
const keys = [join(dir, "one.key"), join(dir, "two.key")];
let agent: Daemon | undefined;

/** A read-only command of ours inside the namespace. */
const inNs = (...args: string[]) =>
  spawnSync("ip", ["netns", "exec", NS, process.execPath, MAIN, ...args, "--config", config], {
    encoding: "utf8",
    timeout: 60_000,
  });

const linkExists = (ifname: string) =>
  spawnSync("ip", ["netns", "exec", NS, "ip", "link", "show", ifname]).status === 0;
const logLines = () =>
  agent!
    .output()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

before(() => {
  freshNamespace(NS);
  writeFileSync(keys[0], `${generatePrivateKey()}\n`, { mode: 0o600 });
  const exit = (i: number) => ({
    name: ["one", "two"][i],
    interface: IFS[i],
    address: `10.77.${i}.2/24`,
    privateKeyFile: keys[i],
    peer: { publicKey: publicKeyOf(generatePrivateKey()), endpoint: `192.0.2.${10 + i}:51820` },
  });
  writeFileSync(config, JSON.stringify({ exits: [exit(0), exit(1)] }));
});

after(async () => {
  await stop(agent);
  for (const ifname of IFS) {
    const pid = findUserspacePid(ifname);
    if (pid !== null) process.kill(pid, "SIGTERM");
    spawnSync("ip", ["netns", "exec", NS, "ip", "link", "del", ifname]);
  }
  spawnSync("ip", ["netns", "del", NS]);
});

test("one exit that cannot start does not keep the others from being served, and starts once it can", {
  timeout: 120_000,
}, async () => {
  agent = startIn(NS, [process.execPath, MAIN, "gateway", "run", "--config", config]);
  await waitFor("exit one's tunnel", 30_000, () => linkExists(IFS[0]), 200);
  await waitFor("the line naming exit two", 10_000, () =>
    logLines().some((l) => l.exit === "two" && /not started/.test(String(l.msg))),
  );
  assert.equal(agent.child.exitCode, null, agent.output());
  assert.equal(linkExists(IFS[1]), false, "nothing of exit two was applied");
  // exit one is repaired while exit two waits
  execFileSync("ip", ["netns", "exec", NS, "ip", "link", "del", IFS[0]]);
  await waitFor("exit one repaired", 30_000, () => linkExists(IFS[0]), 200);

  writeFileSync(keys[1], `${generatePrivateKey()}\n`, { mode: 0o600 });
  await waitFor("exit two started by itself", 40_000, () =>
    logLines().some((l) => l.exit === "two" && /exit agent started/.test(String(l.msg))),
  );
  await waitFor("exit two's tunnel", 30_000, () => linkExists(IFS[1]), 200);

  // gateway status: every exit by default, each under its name; no handshake (the endpoints are
  // documentation addresses nobody answers on) = down = exit 1.
  const st = await waitFor(
    "both exits armed in gateway status",
    30_000,
    () => {
      const r = inNs("gateway", "status", "--json");
      const list = JSON.parse(r.stdout) as { exit: string; interface: string; killSwitchArmed: boolean }[];
      return list.length === 2 && list.every((x) => x.killSwitchArmed) && { r, list };
    },
    500,
  );
  assert.deepEqual(
    st.list.map((x) => [x.exit, x.interface]),
    [
      ["one", IFS[0]],
      ["two", IFS[1]],
    ],
  );
  assert.equal(st.r.status, 1, st.r.stderr);
  const text = inNs("gateway", "status");
  assert.match(text.stdout, new RegExp(`^exit one:\nverdict: +down\ninterface: +${IFS[0]} `, "m"));
  assert.match(text.stdout, new RegExp(`^exit two:\nverdict: +down\ninterface: +${IFS[1]} `, "m"));
  const two = inNs("gateway", "status", "--exit", "two");
  assert.doesNotMatch(two.stdout, /exit one:/);
  assert.match(two.stdout, /^exit two:$/m);

  // doctor: each exit's findings named after it, its kill switch armed, its handshake missing.
  const verdicts = (r: ReturnType<typeof inNs>) =>
    Object.fromEntries(
      (JSON.parse(r.stdout) as { name: string; verdict: string }[]).map((c) => [c.name, c.verdict]),
    );
  const doc = inNs("doctor", "--json", "--no-ip-check", "--timeout", "2");
  assert.equal(doc.status, 1, doc.stderr);
  const all = verdicts(doc);
  for (const x of ["one", "two"]) {
    assert.equal(all[`exit ${x}: kill switch`], "pass", doc.stdout);
    assert.equal(all[`exit ${x}: tunnel interface`], "pass", doc.stdout);
    assert.equal(all[`exit ${x}: nft mark rule`], "pass", doc.stdout);
    assert.equal(all[`exit ${x}: tunnel handshake`], "fail", doc.stdout);
  }
  const narrowed = Object.keys(
    verdicts(inNs("doctor", "--json", "--no-ip-check", "--timeout", "2", "--exit", "two")),
  );
  assert.ok(
    narrowed.includes("exit two: kill switch") && !narrowed.some((n) => n.startsWith("exit one:")),
    narrowed.join(", "),
  );
  const unknown = inNs("doctor", "--exit", "three");
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /no exit named three in the config: --exit takes one of one, two/);

  await stop(agent);
  assert.equal(agent.child.exitCode, 0, agent.output());
});
