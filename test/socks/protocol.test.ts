import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  ATYP,
  type Parsed,
  parseAddressMessage,
  parseAuthRequest,
  parseGreeting,
  parseUdpDatagram,
  REP,
  serializeAddressMessage,
  serializeAuthRequest,
  serializeGreeting,
  serializeReply,
  serializeUdpHeader,
} from "../../src/socks/protocol.js";

test("greeting: complete, partial, wrong version, zero methods", () => {
  assert.deepEqual(parseGreeting(Buffer.from([5, 2, 0, 2])), {
    status: "ok",
    value: { methods: [0, 2] },
    length: 4,
  });
  assert.equal(parseGreeting(Buffer.from([5, 2, 0])).status, "more");
  assert.equal(parseGreeting(Buffer.from([4, 1, 0])).status, "error");
  assert.deepEqual(parseGreeting(Buffer.from([5, 0])), { status: "ok", value: { methods: [] }, length: 2 });
  // offset: the same message later in a buffer
  assert.equal(parseGreeting(Buffer.from([9, 9, 5, 1, 0]), 2).status, "ok");
});

test("request: IPv4, IPv6, domain; bad address type gives reply 0x08; names are checked (parseHost)", () => {
  const v4 = parseAddressMessage(Buffer.from([5, 1, 0, 1, 10, 0, 0, 1, 0x04, 0x38]));
  assert.deepEqual(v4, {
    status: "ok",
    value: { code: 1, atyp: 1, host: "10.0.0.1", port: 1080 },
    length: 10,
  });
  const v6 = parseAddressMessage(serializeAddressMessage(1, "2001:db8::1", 443));
  assert.deepEqual(v6.status === "ok" && v6.value, {
    code: 1,
    atyp: ATYP.ipv6,
    host: "2001:db8::1",
    port: 443,
  });
  const name = parseAddressMessage(Buffer.from([5, 1, 0, 3, 3, 0x61, 0x2e, 0x62, 0, 80]));
  assert.deepEqual(name.status === "ok" && name.value, { code: 1, atyp: 3, host: "a.b", port: 80 });
  const badType = parseAddressMessage(Buffer.from([5, 1, 0, 9, 1, 2, 3, 4, 0, 80]));
  assert.equal(badType.status === "error" && badType.reply, REP.addressTypeNotSupported);
  // Names that are no host name parse (the message is well-formed) but carry the reason: a CONNECT
  // to one is answered 0x01, a UDP ASSOCIATE ignores its address.
  const empty = parseAddressMessage(Buffer.from([5, 1, 0, 3, 0, 0, 80]));
  assert.match((empty.status === "ok" && empty.value.invalid) || "", /empty name/);
  const control = parseAddressMessage(Buffer.from([5, 1, 0, 3, 2, 0x61, 0x00, 0, 80]));
  assert.match((control.status === "ok" && control.value.invalid) || "", /not a host name/);
  // An IP literal sent as a name is the canonical address, IPv4-mapped IPv6 as IPv4.
  const asName = (text: string) => Buffer.from([5, 1, 0, 3, text.length, ...Buffer.from(text), 0, 80]);
  const mapped = parseAddressMessage(asName("::FFFF:10.0.0.1"));
  assert.deepEqual(mapped.status === "ok" && mapped.value, { code: 1, atyp: 3, host: "10.0.0.1", port: 80 });
  const zoned = parseAddressMessage(asName("::ffff:1.2.3.4%a.b"));
  assert.match((zoned.status === "ok" && zoned.value.invalid) || "", /zone id/);
});

test("auth request parses name and password", () => {
  const r = parseAuthRequest(serializeAuthRequest({ username: "pod", password: "s3:cret" }));
  assert.deepEqual(r.status === "ok" && r.value, { username: "pod", password: "s3:cret" });
  assert.equal(parseAuthRequest(Buffer.from([1, 3, 0x61])).status, "more");
  assert.equal(parseAuthRequest(Buffer.from([5, 1, 0x61, 1, 0x62])).status, "error");
});

test("failure replies carry 0.0.0.0:0; success replies the bound address", () => {
  assert.deepEqual([...serializeReply(REP.connectionRefused)], [5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...serializeReply(0, "127.0.0.1", 40000)], [5, 0, 0, 1, 127, 0, 0, 1, 0x9c, 0x40]);
  assert.deepEqual([...serializeReply(0, "203.0.113.255", 1)], [5, 0, 0, 1, 203, 0, 113, 255, 0, 1]);
  assert.equal(serializeReply(0, "::1", 1).length, 22);
});

type Parser = (buf: Uint8Array, offset?: number) => Parsed<unknown>;
const PARSERS: [string, Parser][] = [
  ["greeting", parseGreeting],
  ["auth", parseAuthRequest],
  ["request", parseAddressMessage],
];

test("fuzz: parsers never throw on random bytes and report sane lengths", () => {
  for (const [name, parse] of PARSERS) {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(20), (bytes, off) => {
        const offset = Math.min(off, bytes.length);
        const r = parse(bytes, offset);
        if (r.status === "ok") assert.ok(r.length > 0 && offset + r.length <= bytes.length, name);
      }),
      { numRuns: 3000 },
    );
  }
});

/** A valid message, split anywhere: every proper prefix needs more bytes, the whole parses the same. */
function checkSplits(bytes: Buffer, parse: Parser, expected: unknown): void {
  for (let cut = 0; cut < bytes.length; cut++)
    assert.equal(parse(bytes.subarray(0, cut)).status, "more", `cut ${cut}`);
  const withTail = Buffer.concat([bytes, Buffer.from([0xde, 0xad])]);
  const r = parse(withTail);
  assert.equal(r.status, "ok");
  assert.deepEqual(r.status === "ok" && { value: r.value, length: r.length }, {
    value: expected,
    length: bytes.length,
  });
}

const hostArb = fc.oneof(
  fc.ipV4(),
  fc.ipV6().filter((h) => !/^::ffff:/i.test(h) && !h.includes(".")),
  fc.domain().filter((d) => d.length <= 255),
);

test("fuzz: valid requests and replies round-trip at every split point", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 255 }),
      hostArb,
      fc.integer({ min: 0, max: 65535 }),
      (code, host, port) => {
        const bytes = serializeAddressMessage(code, host, port);
        const r = parseAddressMessage(bytes);
        assert.equal(r.status, "ok");
        if (r.status !== "ok") return;
        // IPv6 comes back in canonical form; serializing it again gives the same bytes.
        assert.deepEqual(serializeAddressMessage(r.value.code, r.value.host, r.value.port), bytes);
        checkSplits(bytes, parseAddressMessage, r.value);
      },
    ),
    { numRuns: 500 },
  );
});

test("fuzz: greetings and auth requests round-trip at every split point", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 255 }), (methods) => {
      checkSplits(serializeGreeting(methods), parseGreeting, { methods });
    }),
    { numRuns: 300 },
  );
  const field = fc.string({ minLength: 0, maxLength: 60 });
  fc.assert(
    fc.property(field, field, (username, password) => {
      checkSplits(serializeAuthRequest({ username, password }), parseAuthRequest, { username, password });
    }),
    { numRuns: 300 },
  );
});

test("UDP datagrams: header round-trip, short ones are errors, random bytes never throw", () => {
  const d = parseUdpDatagram(Buffer.concat([serializeUdpHeader("example.org", 53), Buffer.from("q")]));
  assert.equal(d.status, "ok");
  assert.deepEqual(d.status === "ok" && [d.value.frag, d.value.host, d.value.port, String(d.value.data)], [
    0,
    "example.org",
    53,
    "q",
  ]);
  assert.equal(parseUdpDatagram(Buffer.from([0, 0, 0, 1, 127])).status, "error");
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const r = parseUdpDatagram(Buffer.from(bytes));
      assert.notEqual(r.status, "more");
    }),
    { numRuns: 2000 },
  );
});
