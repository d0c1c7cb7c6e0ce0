/** The one destination-name check (SOCKS ATYP 3, HTTP CONNECT, UDP): examples and fast-check properties. */
import assert from "node:assert/strict";
import { isIP } from "node:net";
import { test } from "node:test";
import fc from "fast-check";
import { canonicalIp } from "../../src/policy/addresses.js";
import { parseHost } from "../../src/socks/host.js";

const kind = (text: string) => parseHost(text).kind;

test("names, IP literals and what is neither", () => {
  for (const name of [
    "example.com",
    "EXAMPLE.com.",
    "a",
    "xn--bcher-kva.example",
    "a-b.c",
    "_dmarc.example.org",
    "1.example",
    "a.b2c",
  ])
    assert.deepEqual(parseHost(name), { kind: "name", name }, name);
  assert.deepEqual(parseHost("10.0.0.1"), { kind: "ip", ip: "10.0.0.1" });
  assert.deepEqual(parseHost("2001:DB8:0:0::1"), { kind: "ip", ip: "2001:db8::1" });
  assert.deepEqual(parseHost("::ffff:169.254.169.254"), { kind: "ip", ip: "169.254.169.254" });
  assert.deepEqual(parseHost("::ffff:a9fe:a9fe"), { kind: "ip", ip: "169.254.169.254" });
  for (const bad of [
    "", // empty
    "::ffff:1.2.3.4%a.b", // zone ids: Node's isIP accepts them, ipaddr.js does not (the crash of issue 9)
    "::1%ffff:",
    "fe80::1%eth0",
    "localhost\0.example.com", // the resolver would cut the name at the NUL
    "a\r\nb.com",
    "exa mple.com",
    "[::1]",
    "[example.com]",
    "ex%61mple.com",
    "bücher.example",
    "a..b",
    ".a",
    "-a.com",
    "a-.com",
    "a.com..",
    "127.1", // numeric forms the C resolver reads as addresses (inet_aton)
    "0x7f.1",
    "2130706433",
    "127.0.0.01",
    "0",
    `${"a".repeat(64)}.com`,
    `${"a.".repeat(127)}a`,
    "a/b",
    "a:b",
  ])
    assert.equal(kind(bad), "invalid", JSON.stringify(bad));
});

/** A zone id: random text, or what Node's isIP accepts in one (ipaddr.js accepts only letters and digits). */
const zone = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: fc.constantFrom(..."aZ09-.:"), minLength: 1, maxLength: 12 }),
);

/** Characters that make the fuzzer's strings hostile, mixed into ordinary name and address text. */
const hostileChar = fc.constantFrom(
  "%",
  "\0",
  "[",
  "]",
  ":",
  ".",
  "-",
  "_",
  " ",
  "\n",
  "\x7f",
  "é",
  "\u2028",
  "ﬀ",
  "０",
  "/",
  "@",
);
const nameChar = fc.constantFrom(..."abcxyz019-.".split(""));
const hostile = fc.oneof(
  fc.string({ unit: fc.oneof(hostileChar, nameChar), maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.tuple(fc.ipV6(), zone).map(([ip, z]) => `${ip}%${z}`),
  fc.tuple(fc.ipV4(), zone).map(([ip, z]) => `::ffff:${ip}%${z}`),
  fc.tuple(fc.domain(), hostileChar, fc.domain()).map(([a, c, b]) => `${a}${c}${b}`),
  fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain()).map((h) => `[${h}]`),
);

test("fuzz: never throws; a name is plain ASCII host-name text; an IP is canonical and zone-free", () => {
  fc.assert(
    fc.property(hostile, (text) => {
      const h = parseHost(text);
      if (h.kind === "name") {
        assert.equal(h.name, text);
        assert.match(text, /^[A-Za-z0-9_.-]+$/, "only letters, digits, '-', '_' and dots");
        assert.equal(isIP(text), 0);
        assert.ok(text.length <= 254);
      } else if (h.kind === "ip") {
        assert.equal(canonicalIp(h.ip), h.ip);
        assert.ok(!h.ip.includes("%"));
      }
      for (const c of ["%", "\0", "[", "]", " ", "\n", "\x7f", "é", "/"])
        if (text.includes(c))
          assert.equal(h.kind, "invalid", `${JSON.stringify(text)} contains ${JSON.stringify(c)}`);
    }),
    { numRuns: 5000 },
  );
});

test("fuzz: every domain, IPv4 and IPv6 address fast-check makes is accepted as such", () => {
  fc.assert(
    fc.property(fc.domain(), (d) => assert.deepEqual(parseHost(d), { kind: "name", name: d })),
    { numRuns: 1000 },
  );
  fc.assert(
    fc.property(fc.ipV4(), (ip) => assert.deepEqual(parseHost(ip), { kind: "ip", ip })),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(fc.ipV6(), (ip) => {
      const h = parseHost(ip);
      assert.equal(h.kind, "ip");
      assert.equal(h.kind === "ip" && h.ip, canonicalIp(ip));
    }),
    { numRuns: 1000 },
  );
});
