import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultMaxConnections, fdsNeeded, parseFdLimit } from "../../src/socks/fd-limit.js";
import { parseUsersFile, UserStore } from "../../src/socks/users.js";
import { UserError } from "../../src/util/errors.js";

test("users file: name:password lines, comments, passwords with colons", () => {
  const users = parseUsersFile("# pods\nalice:a:b:c\n\nbob:pw\r\n", "u.txt");
  assert.deepEqual(users, [
    { name: "alice", password: "a:b:c" },
    { name: "bob", password: "pw" },
  ]);
});

test("users file: a bad line names file:line and not the content", () => {
  for (const [text, line] of [
    ["ok:1\nnocolon-secret\n", 2],
    [":pw\n", 1],
    ["a:1\nb:\n", 2],
  ] as const) {
    assert.throws(
      () => parseUsersFile(text, "/etc/users"),
      (e: unknown) =>
        e instanceof UserError &&
        e.message.startsWith(`/etc/users:${line}: `) &&
        !e.message.includes("secret"),
    );
  }
});

test("user store verifies only the right password", () => {
  const s = new UserStore([{ name: "alice", password: "right" }]);
  assert.equal(s.verify("alice", "right"), true);
  assert.equal(s.verify("alice", "wrong"), false);
  assert.equal(s.verify("mallory", "right"), false);
  assert.equal(s.size, 1);
});

test("fd limit is read from /proc/self/limits text", () => {
  const text =
    "Max cpu time  unlimited  unlimited  seconds\nMax open files            1024                 524288               files\n";
  assert.deepEqual(parseFdLimit(text), { soft: 1024, hard: 524288 });
  assert.deepEqual(parseFdLimit("Max open files unlimited unlimited files"), {
    soft: Number.POSITIVE_INFINITY,
    hard: Number.POSITIVE_INFINITY,
  });
  assert.equal(parseFdLimit("nothing"), undefined);
});

test("default maxConnections: what the open-file limit allows, at most 32,768", () => {
  assert.equal(defaultMaxConnections(20_000), 9968);
  assert.ok(fdsNeeded(defaultMaxConnections(20_000)) <= 20_000);
  assert.ok(fdsNeeded(defaultMaxConnections(20_000) + 1) > 20_000);
  assert.equal(defaultMaxConnections(1024), 480);
  assert.equal(defaultMaxConnections(65_536), 32_736);
  assert.equal(defaultMaxConnections(1_048_576), 32_768);
  assert.equal(defaultMaxConnections(Number.POSITIVE_INFINITY), 32_768);
  assert.equal(defaultMaxConnections(undefined), 32_768);
  assert.equal(defaultMaxConnections(10), 1);
});
