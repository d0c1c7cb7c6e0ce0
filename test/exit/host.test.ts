import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
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

test("the exit runs a resolver on its tunnel address for the gateway only, restarted only on change", () => {
  const h = renderExitHost(exitOf({ dns: { forwarders: ["192.0.2.53"], dnssec: false } }), {
    privateKey: generatePrivateKey(),
    gatewayPublicKey: GW_PUB,
  });
  assert.match(h.nftRuleset, /iifname "wg0" meta l4proto \{ tcp, udp \} th dport 53 accept/);
  assert.match(h.unboundConfig, /^ {2}interface: 10\.100\.0\.1$/m);
  assert.match(
    h.unboundConfig,
    /access-control: 0\.0\.0\.0\/0 refuse\n.*\n {2}access-control: 10\.100\.0\.2\/32 allow/,
  );
  assert.match(h.unboundConfig, /forward-zone:\n {2}name: "\."\n {2}forward-addr: 192\.0\.2\.53/);
  assert.match(h.unboundConfig, /module-config: "iterator"/);
  // After the firewall, before the tunnel: a key change is not held up by the resolver.
  const at = (t: string) => h.setupScript.indexOf(t);
  assert.ok(at('nft -f "$DIR/exit.nft"') < at("unbound -c") && at("unbound -c") < at("wg syncconf"));
  // Restarted only when its config changed (or it is not running).
  assert.match(h.setupScript, /cmp -s "\$DIR\/unbound\.conf\.new" "\$DIR\/unbound\.conf"/);
  const validating = renderExitHost(exitOf(), { privateKey: generatePrivateKey(), gatewayPublicKey: GW_PUB });
  assert.match(
    validating.unboundConfig,
    /module-config: "validator iterator"\n {2}trust-anchor-file: "\/usr\/share\/dns\/root\.key"/,
  );
  assert.doesNotMatch(validating.unboundConfig, /forward-zone/);
  assert.match(validating.setupScript, /apt-get install -y -q unbound dns-root-data/);
  execFileSync("sh", ["-n"], { input: validating.setupScript });
});

test("a missing gateway key or a bad SSH source is a one-line error", () => {
  assert.throws(() => renderExitHost(exitOf(), { privateKey: generatePrivateKey() }), UserError);
  const bad = { ...exitOf(), sshAllowFrom: ["home"] };
  assert.throws(
    () => renderExitHost(bad, { privateKey: generatePrivateKey(), gatewayPublicKey: GW_PUB }),
    /sshAllowFrom: "home"/,
  );
});
