import assert from "node:assert/strict";
import { isIPv4, isIPv6 } from "node:net";
import { test } from "node:test";
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import { CidrSet, ipv4Number, parseIPv6 } from "../../src/policy/addresses.js";

/** The reference: ipaddr.js, rule by rule, per family. */
function referenceHas(rules: readonly string[], ip: string): boolean {
  if (!ipaddr.isValid(ip) || ip.includes("%")) return false;
  const addr = ipaddr.parse(ip);
  return rules.some((r) => {
    const [net, prefix] = ipaddr.parseCIDR(r.includes("/") ? r : `${r}/${isIPv4(r) ? 32 : 128}`);
    return net.kind() === addr.kind() && addr.match(net, prefix);
  });
}

const bytes4 = fc.uint8Array({ minLength: 4, maxLength: 4 });
const bytes16 = fc.uint8Array({ minLength: 16, maxLength: 16 });

/** An IPv6 address in one of the spellings Node's isIPv6 accepts. */
const ipv6Text = fc.tuple(bytes16, fc.integer({ min: 0, max: 4 })).map(([b, form]) => {
  const a = ipaddr.fromByteArray([...b]) as ipaddr.IPv6;
  switch (form) {
    case 0:
      return a.toString(); // RFC 5952, compressed
    case 1:
      return a.toNormalizedString(); // all eight groups
    case 2:
      return a
        .toNormalizedString()
        .split(":")
        .map((g) => g.padStart(4, "0").toUpperCase())
        .join(":");
    case 3: {
      const head = a.toNormalizedString().split(":").slice(0, 6).join(":");
      return `${head}:${b[12]}.${b[13]}.${b[14]}.${b[15]}`; // dotted-quad tail
    }
    default:
      return a.toString().replace(/^0:/, "::").replace(/::0:/, "::").replace(/:::/, "::");
  }
});

test("ipv4Number and parseIPv6 accept exactly what Node's isIPv4 / isIPv6 accept, with the right value", () => {
  const words = new Uint32Array(4);
  fc.assert(
    fc.property(bytes4, (b) => {
      const text = [...b].join(".");
      assert.equal(ipv4Number(text), ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0);
    }),
  );
  fc.assert(
    fc.property(ipv6Text, (text) => {
      assert.equal(parseIPv6(text, words), isIPv6(text), text);
      if (!isIPv6(text)) return;
      const b = ipaddr.IPv6.parse(text).toByteArray();
      for (let w = 0; w < 4; w++)
        assert.equal(
          words[w],
          ((b[w * 4]! << 24) | (b[w * 4 + 1]! << 16) | (b[w * 4 + 2]! << 8) | b[w * 4 + 3]!) >>> 0,
        );
    }),
    { numRuns: 2000 },
  );
  // Mangled text: the parsers agree with Node on validity (zone ids are refused: canonical addresses only).
  const mangled = fc
    .tuple(
      fc.oneof(
        ipv6Text,
        bytes4.map((b) => [...b].join(".")),
      ),
      fc.nat(),
      fc.constantFrom(..."0:.:f1%x 0"),
    )
    .map(([t, at, c]) => {
      const i = at % (t.length + 1);
      return at % 3 === 0 ? t.slice(0, i) + t.slice(i + 1) : t.slice(0, i) + c + t.slice(i);
    });
  fc.assert(
    fc.property(mangled, (text) => {
      assert.equal(ipv4Number(text) >= 0, isIPv4(text), text);
      assert.equal(parseIPv6(text, words), isIPv6(text) && !text.includes("%"), text);
    }),
    { numRuns: 5000 },
  );
  for (const bad of [
    "",
    "1.2.3",
    "1.2.3.4.5",
    "01.2.3.4",
    "1.2.3.256",
    "1.2.3.4 ",
    ":",
    ":::",
    "1:2",
    "1::2::3",
    "1:2:3:4:5:6:7:8:9",
    "::1.2.3",
    "fe80::1%eth0",
  ]) {
    assert.ok(ipv4Number(bad) < 0 && !parseIPv6(bad, words), bad);
  }
});

test("CidrSet matches like ipaddr.js rule by rule, per family, for overlapping and nested rules", () => {
  // Rules drawn around the looked-up address so that hits, near misses and overlaps all occur.
  const rule = fc.tuple(fc.oneof(bytes4, bytes16), fc.nat()).map(([b, p]) => {
    const a = ipaddr.fromByteArray([...b]);
    return `${a.toString()}/${p % (b.length * 8 + 1)}`;
  });
  const near = (ip: string, prefix: number) => {
    const a = ipaddr.parse(ip);
    return `${a.toString()}/${prefix % (a.kind() === "ipv4" ? 33 : 129)}`;
  };
  const address = fc.oneof(
    bytes4.map((b) => [...b].join(".")),
    ipv6Text,
  );
  fc.assert(
    fc.property(
      address,
      fc.array(rule, { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 4 }),
      (ip, rules, prefixes) => {
        const all = [...rules, ...prefixes.map((p) => near(ip, p))];
        assert.equal(new CidrSet(all).has(ip), referenceHas(all, ip), `${ip} in ${all.join(", ")}`);
      },
    ),
    { numRuns: 3000 },
  );
});

test("CidrSet: bare addresses, host bits in the rule, merged ranges and non-addresses", () => {
  const set = new CidrSet([
    "10.1.2.3",
    "10.9.9.9/8",
    "10.0.0.0/9",
    "192.168.0.0/24",
    "192.168.1.0/24",
    "2001:db8::1",
    "fd00::/8",
    "fd00:1::/32",
  ]);
  assert.equal(set.size, 8);
  for (const ip of [
    "10.0.0.0",
    "10.255.255.255",
    "192.168.0.0",
    "192.168.1.255",
    "2001:db8::1",
    "fd12::",
    "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
  ])
    assert.ok(set.has(ip), ip);
  for (const ip of [
    "11.0.0.0",
    "9.255.255.255",
    "192.168.2.0",
    "2001:db8::2",
    "fe00::",
    "::ffff:10.0.0.1",
    "10.0.0.1%eth0",
    "fd00::1%2",
    "x",
    "",
  ])
    assert.ok(!set.has(ip), ip);
  assert.ok(new CidrSet(["0.0.0.0/0"]).has("255.255.255.255") && !new CidrSet(["0.0.0.0/0"]).has("::"));
  assert.ok(
    new CidrSet(["::/0"]).has("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") &&
      !new CidrSet(["::/0"]).has("1.2.3.4"),
  );
  assert.ok(!new CidrSet([]).has("1.2.3.4"));
});
