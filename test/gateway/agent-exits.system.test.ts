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
 * brought up and repaired all the same, and the broken one starts by itself once its key appears.
 */

const NS = "wgetest-ax";
const IFS = ["wgetest-ax1", "wgetest-ax2"]; // wireguard-go sockets are host-wide: names nothing else uses
const dir = tempDir("wgetest-ax-");
const config = join(dir, "config.yaml");
const keys = [join(dir, "one.key"), join(dir, "two.key")];
let agent: Daemon | undefined;

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
  await stop(agent);
  assert.equal(agent.child.exitCode, 0, agent.output());
});
