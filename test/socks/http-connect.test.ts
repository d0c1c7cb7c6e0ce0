import assert from "node:assert/strict";
import { test } from "node:test";
import { httpResponse, MAX_HEAD_BYTES, parseConnectHead } from "../../src/socks/http-connect.js";

const head = (s: string) => Buffer.from(s, "latin1");

test("CONNECT host:port with and without credentials", () => {
  const text = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nTLS";
  const r = parseConnectHead(head(text));
  assert.equal(r.status, "ok");
  assert.deepEqual(r.status === "ok" && r.value, { host: "example.com", port: 443, credentials: undefined });
  // the bytes after the head (here the start of TLS) are not part of it
  assert.equal(r.status === "ok" && r.length, text.indexOf("TLS"));
  const auth = Buffer.from("pod:pa:ss").toString("base64");
  const a = parseConnectHead(
    head(`CONNECT [::1]:8443 HTTP/1.1\r\nproxy-authorization: Basic ${auth}\r\n\r\n`),
  );
  assert.deepEqual(a.status === "ok" && a.value, {
    host: "::1",
    port: 8443,
    credentials: { username: "pod", password: "pa:ss" },
  });
});

test("partial heads need more; bad ones get 400/405/431", () => {
  assert.equal(parseConnectHead(head("CONNECT a:1 HTTP/1.1\r\n")).status, "more");
  const status = (s: string | Buffer) => {
    const r = parseConnectHead(typeof s === "string" ? head(s) : s);
    return r.status === "error" ? r.reply : r.status;
  };
  assert.equal(status("GET http://a/ HTTP/1.1\r\n\r\n"), 405);
  assert.equal(status("CONNECT a HTTP/1.1\r\n\r\n"), 400);
  assert.equal(status("CONNECT a:0 HTTP/1.1\r\n\r\n"), 400);
  assert.equal(status("hello\r\n\r\n"), 400);
  assert.equal(status(Buffer.alloc(MAX_HEAD_BYTES + 1, 0x41)), 431);
});

test("responses are complete HTTP heads", () => {
  assert.equal(httpResponse(200).toString(), "HTTP/1.1 200 Connection established\r\n\r\n");
  const r407 = httpResponse(407).toString();
  assert.match(r407, /^HTTP\/1\.1 407 /);
  assert.match(r407, /Proxy-Authenticate: Basic/);
  assert.match(httpResponse(403, "10.0.0.1 is private").toString(), /\r\n\r\n10\.0\.0\.1 is private\n$/);
});
