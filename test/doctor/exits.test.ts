import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { markRuleCheck, ruleCheck } from "../../src/doctor/checks.js";
import { runDoctor, TUNNEL_CHECKS } from "../../src/doctor/run.js";
import { parseNftTable, renderRuleset } from "../../src/gateway/nft.js";
import type { GatewayStatus } from "../../src/gateway/status.js";
import { UserError } from "../../src/util/errors.js";
import { dataPath } from "../support/datapath.js";

/** doctor with several exits: every exit checked, each finding naming its exit; --exit narrows. */

const hel = dataPath({
  ifname: "wge-hel",
  fwmark: 0xca6d,
  table: 51821,
  rulePriority: 5172,
  nftTable: "wg-egress-hel",
  primary: false,
  sources: ["10.100.1.2"],
});
const markRules = (p: typeof hel) =>
  parseNftTable(renderRuleset(p)).chains.find((c) => c.name === "mark_proxy")!.rules;

test("another exit's nft mark and rule checks look for its source address, not the proxy's uid", () => {
  const ok = markRuleCheck(markRules(hel), hel);
  assert.equal(ok.verdict, "pass", ok.evidence);
  assert.equal(ok.evidence, "saddr 10.100.1.2 … meta mark set 0xca6d");
  const wrong = markRuleCheck(markRules(hel), { ...hel, sources: ["10.100.1.3"] });
  assert.equal(wrong.verdict, "fail");
  assert.match(wrong.fix!, /this exit's sources are 10\.100\.1\.3 and its mark 0xca6d/);
  assert.equal(markRuleCheck(markRules(hel), { ...hel, fwmark: 0xca6e }).verdict, "fail");
  assert.match(markRuleCheck(null, hel).evidence, /table inet wg-egress-hel or its chain mark_proxy/);
  const st = { rule: { ipv4: true, ipv6: false } } as GatewayStatus;
  assert.match(
    ruleCheck(st, hel).evidence,
    /^missing IPv6 rules \(want: priority 5172 from 10\.100\.1\.2 lookup 51821\)$/,
  );
  assert.equal(
    ruleCheck({ rule: { ipv4: true, ipv6: true } } as GatewayStatus, hel).evidence,
    "from 10.100.1.2 lookup 51821 rules present (IPv4 and IPv6)",
  );
});

test("doctor checks every exit (findings named after it), tests another exit's IP from its tunnel address; --exit narrows", async () => {
  // An echo service on loopback: it answers with the caller's address. Exit hel's tunnel address is a
  // loopback one here, so the request from it really leaves from that address.
  const echo = createServer((req, res) => res.end(`${req.socket.remoteAddress?.replace(/^::ffff:/, "")}\n`));
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(echo.address() as AddressInfo).port}/`;
  try {
    const config = parseConfig({
      proxy: { listen: ["127.0.0.1:1"] },
      gateway: { interface: "wgetest-dfra" },
      exits: [
        { name: "fra" },
        {
          name: "hel",
          interface: "wgetest-dhel",
          address: "127.77.0.2/8",
          peer: { publicKey: "x".repeat(42) + "A=" },
        },
      ],
    });
    const names = (rs: { name: string }[]) => rs.map((r) => r.name);
    const all = await runDoctor(config, { ipEchoUrl: url, timeoutMs: 5000 });
    for (const exit of ["fra", "hel"])
      for (const check of TUNNEL_CHECKS)
        assert.ok(names(all).includes(`exit ${exit}: ${check}`), `${exit}: ${check} in ${names(all)}`);
    const helIp = all.find((r) => r.name === "exit hel: exit IP from its tunnel address")!;
    assert.equal(helIp.verdict, "pass", helIp.evidence);
    assert.match(helIp.evidence, /sees 127\.77\.0\.2 from 127\.77\.0\.2, 127\.0\.0\.1 directly/);
    // The proxy-wide checks stay unnamed: there is one proxy.
    assert.ok(names(all).includes("proxy listening"));
    assert.ok(
      !names(all).some((n) => n.startsWith("exit fra: exit IP")),
      "the first exit is tested through the proxy",
    );

    const one = await runDoctor(config, { ipEchoUrl: url, timeoutMs: 5000, exit: "fra" });
    assert.ok(!names(one).some((n) => n.startsWith("exit hel:")), names(one).join(", "));
    assert.ok(names(one).includes("exit fra: tunnel interface"));
    await assert.rejects(
      runDoctor(config, { ipEchoUrl: null, exit: "ams" }),
      (e: unknown) =>
        e instanceof UserError &&
        e.exitCode === 2 &&
        /no exit named ams in the config: --exit takes one of fra, hel/.test(e.message),
    );

    // One exit: the names as they always were.
    const single = await runDoctor(
      parseConfig({ proxy: { listen: ["127.0.0.1:1"] }, gateway: { interface: "wgetest-dfra" } }),
      {
        ipEchoUrl: null,
      },
    );
    assert.ok(
      names(single).includes("tunnel interface") && !names(single).some((n) => /^exit \w+: /.test(n)),
    );
  } finally {
    echo.close();
  }
});
