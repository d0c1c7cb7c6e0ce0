import assert from "node:assert/strict";
import { test } from "node:test";
import { DnsError } from "../../src/policy/resolve.js";
import { REP } from "../../src/socks/protocol.js";
import { httpStatusForReply, replyForError, replyName } from "../../src/socks/replies.js";

const errno = (code: string) => Object.assign(new Error(code), { code });

test("connect errors map to RFC 1928 reply codes", () => {
  assert.equal(replyForError(errno("ECONNREFUSED")), REP.connectionRefused);
  assert.equal(replyForError(errno("ENETUNREACH")), REP.networkUnreachable);
  assert.equal(replyForError(errno("EHOSTUNREACH")), REP.hostUnreachable);
  assert.equal(replyForError(errno("ETIMEDOUT")), REP.ttlExpired);
  assert.equal(replyForError(errno("EACCES")), REP.notAllowed);
  assert.equal(replyForError(errno("EPERM")), REP.notAllowed);
  assert.equal(replyForError(errno("ECONNRESET")), REP.generalFailure);
  assert.equal(replyForError(new Error("no code")), REP.generalFailure);
});

test("DNS failures are host unreachable even when c-ares reuses TCP-looking codes", () => {
  assert.equal(replyForError(new DnsError("ENOTFOUND", "x.invalid")), REP.hostUnreachable);
  assert.equal(replyForError(new DnsError("ECONNREFUSED", "x.invalid")), REP.hostUnreachable);
});

test("HTTP statuses and names for replies", () => {
  assert.equal(httpStatusForReply(REP.notAllowed), 403);
  assert.equal(httpStatusForReply(REP.ttlExpired), 504);
  assert.equal(httpStatusForReply(REP.connectionRefused), 502);
  assert.equal(replyName(REP.connectionRefused), "connection_refused");
  assert.equal(replyName(0x42), "0x42");
});
