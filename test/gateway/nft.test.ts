import assert from "node:assert/strict";
import { test } from "node:test";
import {
  expectedChains,
  nftCurrent,
  nftMissing,
  parseNftTable,
  renderRuleset,
  rulesetHash,
} from "../../src/gateway/nft.js";
import { dataPath } from "../support/datapath.js";

const p = dataPath({ clients: { v4: ["10.1.0.0/24", "10.42.0.0/16"], v6: ["fd00:1::/64"] } });

// Captured: `nft list table inet wg-egress` after loading renderRuleset(p) (nft 1.0.6), counter bumped to 7.
const LISTED = `table inet wg-egress {
	comment "managed by wg-egress; sha256:${rulesetHash(p)}"
	counter killswitch_rejects {
		packets 7 bytes 420
	}

	chain mark_proxy {
		type route hook output priority mangle; policy accept;
		meta skuid 400 oifname != "lo" ct direction original ip daddr != { 10.1.0.0/24, 10.42.0.0/16 } meta mark set 0x0000ca6c
		meta skuid 400 oifname != "lo" ct direction original ip6 daddr != fd00:1::/64 meta mark set 0x0000ca6c
		meta mark 0x0000ca6c ct mark set meta mark
	}

	chain restore_mark {
		type filter hook prerouting priority mangle; policy accept;
		iifname "wg-egress" ct mark 0x0000ca6c meta mark set ct mark
	}

	chain kill_switch {
		type filter hook output priority filter; policy accept;
		meta mark 0x0000ca6c meta nfproto ipv6 counter name "killswitch_rejects" reject with icmpx admin-prohibited
		meta mark 0x0000ca6c oifname != "wg-egress" counter name "killswitch_rejects" reject with icmpx admin-prohibited
	}

	chain leak_guard {
		type filter hook postrouting priority filter; policy accept;
		meta mark 0x0000ca6c oifname != "wg-egress" counter name "killswitch_rejects" drop
	}

	chain snat_tunnel {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wg-egress" meta mark 0x0000ca6c masquerade
	}

	chain tunnel_in {
		type filter hook input priority filter; policy accept;
		iifname "wg-egress" ct state established,related accept
		iifname "wg-egress" drop
	}

	chain tunnel_fwd {
		type filter hook forward priority filter; policy accept;
		iifname "wg-egress" ct state established,related accept
		iifname "wg-egress" drop
	}
}
`;

test("one parser for the listing and for the rendered ruleset: same chains, same rule counts", () => {
  const listed = parseNftTable(LISTED);
  assert.equal(listed.hash, rulesetHash(p));
  assert.equal(listed.rejected, 7);
  const rendered = expectedChains(p);
  assert.deepEqual(
    listed.chains.map((c) => [c.name, c.rules.length]),
    rendered.map((c) => [c.name, c.rules.length]),
  );
  assert.equal(
    listed.chains[0].rules[1],
    'meta skuid 400 oifname != "lo" ct direction original ip6 daddr != fd00:1::/64 meta mark set 0x0000ca6c',
  );
  assert.deepEqual(parseNftTable(renderRuleset(p)).chains, rendered);
  assert.ok(nftCurrent(p, listed));
  assert.deepEqual(nftMissing(p, listed), []);
});

test("a missing chain or an emptied one is named; an old hash is not current but complete", () => {
  const withoutGuard = parseNftTable(LISTED.replace(/\tchain leak_guard \{[^}]*\}\n/, ""));
  assert.deepEqual(nftMissing(p, withoutGuard), ["chain leak_guard"]);
  assert.ok(!nftCurrent(p, withoutGuard));
  const flushed = parseNftTable(LISTED.replace(/(chain kill_switch \{\n[^\n]*\n)[^}]*/, "$1\t"));
  assert.deepEqual(nftMissing(p, flushed), ["chain kill_switch (0 of 2 rules)"]);
  const old = parseNftTable(LISTED.replace(/sha256:[0-9a-f]+/, "sha256:0123456789abcdef"));
  assert.deepEqual(nftMissing(p, old), []);
  assert.ok(!nftCurrent(p, old));
  assert.deepEqual(nftMissing(p, null), ["nft table inet wg-egress"]);
});
