import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { renderExitHost } from "../../src/exit/host.js";
import { UserError } from "../../src/util/errors.js";
import { generatePrivateKey, publicKeyOf } from "../../src/wireguard/keys.js";

const GW_PUB = publicKeyOf(generatePrivateKey());
const exitOf = (exit: Record<string, unknown> = {}) => parseConfig({ exit }).exit;

test("renders wg config, firewall, sysctls and a script from the exit config", () => {
  const priv = generatePrivateKey();
  const h = renderExitHost(
    exitOf({ publicInterface: "ens3", sshAllowFrom: ["198.51.100.2/32", "2001:db8::/32"] }),
    {
      privateKey: priv,
      gatewayPublicKey: GW_PUB,
    },
  );
  assert.match(h.wgConfig, new RegExp(`PrivateKey = ${priv.replace(/[+/]/g, "\\$&")}\\nListenPort = 51820`));
  assert.match(h.wgConfig, /AllowedIPs = 10\.100\.0\.2\/32/);
  assert.match(h.nftRuleset, /hook input priority filter; policy drop;/);
  assert.match(h.nftRuleset, /udp dport 51820 accept/);
  assert.match(h.nftRuleset, /ip saddr \{ 198\.51\.100\.2\/32 \} tcp dport 22 accept/);
  assert.match(h.nftRuleset, /ip6 saddr \{ 2001:db8::\/32 \} tcp dport 22 accept/);
  assert.match(h.nftRuleset, /iifname "wg0" oifname "ens3" accept/);
  assert.match(h.nftRuleset, /iifname "wg0" oifname "ens3" masquerade/);
  assert.deepEqual(h.sysctls, { "net.ipv4.ip_forward": "1" });
  assert.deepEqual(
    renderExitHost(exitOf({ address6: "fd00:100::1/64" }), { privateKey: priv, gatewayPublicKey: GW_PUB })
      .sysctls,
    {
      "net.ipv4.ip_forward": "1",
      "net.ipv6.conf.all.forwarding": "1",
    },
  );
  assert.ok(
    h.setupScript.indexOf("nft -f") < h.setupScript.indexOf("wg syncconf"),
    "firewall before the tunnel",
  );
  execFileSync("sh", ["-n"], { input: h.setupScript });
});

test("a missing gateway key or a bad SSH source is a one-line error", () => {
  assert.throws(() => renderExitHost(exitOf(), { privateKey: generatePrivateKey() }), UserError);
  const bad = { ...exitOf(), sshAllowFrom: ["home"] };
  assert.throws(
    () => renderExitHost(bad, { privateKey: generatePrivateKey(), gatewayPublicKey: GW_PUB }),
    /sshAllowFrom: "home"/,
  );
});

const root = process.getuid?.() === 0;

test("the setup script applies in a namespace and converges when run again", {
  skip: !root && "needs root (namespaces)",
}, () => {
  const ns = "wgetest-exit";
  const ifname = "wgetest-exit0"; // wireguard-go sockets are host-wide: a name no one else uses
  const dir = mkdtempSync(join(tmpdir(), "wg-egress-exit-"));
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
  } finally {
    // Deleting the tun device stops wireguard-go and removes its socket.
    spawnSync("ip", ["netns", "exec", ns, "ip", "link", "del", ifname]);
    spawnSync("ip", ["netns", "del", ns]);
  }
});
