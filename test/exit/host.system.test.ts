import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";
import { before, test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { renderExitHost } from "../../src/exit/host.js";
import { generatePrivateKey, publicKeyOf } from "../../src/wireguard/keys.js";
import { waitFor } from "../support/poll.js";
import { tempDir } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";

before(() => requireTools("wg", "wireguard-go", "nft", "unbound", "ss"));

const GW_PUB = publicKeyOf(generatePrivateKey());
const exitOf = (exit: Record<string, unknown> = {}) => parseConfig({ exit }).exit;

test("the setup script applies in a namespace and converges when run again", async () => {
  const ns = "wgetest-exit";
  const ifname = "wgetest-exit0"; // wireguard-go sockets are host-wide: a name no one else uses
  const dir = tempDir("wgetest-exit-");
  const h = renderExitHost(exitOf({ interface: ifname, publicInterface: "pub0" }), {
    privateKey: generatePrivateKey(),
    gatewayPublicKey: GW_PUB,
  });
  spawnSync("ip", ["netns", "del", ns]);
  execFileSync("ip", ["netns", "add", ns]);
  try {
    execFileSync("ip", [
      "link",
      "add",
      "pub0",
      "netns",
      ns,
      "type",
      "veth",
      "peer",
      "name",
      "pub1",
      "netns",
      ns,
    ]);
    for (let i = 0; i < 2; i++)
      execFileSync("ip", ["netns", "exec", ns, "sh", "-s"], {
        input: h.setupScript,
        env: { ...process.env, WG_EGRESS_EXIT_DIR: dir },
      });
    const dump = execFileSync("ip", ["netns", "exec", ns, "wg", "show", ifname, "dump"], {
      encoding: "utf8",
    });
    assert.match(dump, new RegExp(`^${GW_PUB.replace(/[+/]/g, "\\$&")}\\t`, "m"));
    assert.match(dump, /\t51820\t/);
    const addr = execFileSync(
      "ip",
      ["netns", "exec", ns, "ip", "-4", "-o", "address", "show", "dev", ifname],
      { encoding: "utf8" },
    );
    assert.match(addr, /10\.100\.0\.1\/24/);
    const fwd = execFileSync("ip", ["netns", "exec", ns, "cat", "/proc/sys/net/ipv4/ip_forward"], {
      encoding: "utf8",
    });
    assert.equal(fwd.trim(), "1");
    const rules = execFileSync(
      "ip",
      ["netns", "exec", ns, "nft", "list", "table", "inet", "wg-egress-exit"],
      { encoding: "utf8" },
    );
    assert.match(rules, /masquerade/);
    // The gateway's resolver listens on the tunnel address (run twice: one instance, reloaded by SIGHUP).
    const dns = await waitFor("unbound on 10.100.0.1:53", 10_000, () => {
      const ss = execFileSync("ip", ["netns", "exec", ns, "ss", "-Hlun", "sport = :53"], {
        encoding: "utf8",
      });
      return /10\.100\.0\.1:53/.test(ss) && ss;
    });
    assert.equal(dns.trim().split("\n").length, 1, dns);
  } finally {
    // unbound runs until stopped (a deleted namespace would live on with it).
    const pid = spawnSync("cat", [join(dir, "unbound.pid")], { encoding: "utf8" }).stdout.trim();
    if (pid) spawnSync("kill", [pid]);
    // Deleting the tun device stops wireguard-go and removes its socket.
    spawnSync("ip", ["netns", "exec", ns, "ip", "link", "del", ifname]);
    spawnSync("ip", ["netns", "del", ns]);
  }
});
