import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

/**
 * LineLogger's batches, as a user sees them on stderr: every line whole, once, in order, UTF-8
 * intact, across batch boundaries, for lines longer than a batch, and written at exit.
 */

const LOG = fileURLToPath(new URL("../../src/util/log.js", import.meta.url));

/** The child writes the lines (their texts on stdin) through LineLogger, then exits without flushing itself. */
const SCRIPT = `
import { readFileSync } from "node:fs";
import { jsonField, LineLogger, log } from ${JSON.stringify(LOG)};
const out = new LineLogger(log, "connection closed");
const fields = JSON.parse(readFileSync(0, "utf8"));
for (const [i, text] of fields.entries()) out.info('"id":' + i + jsonField(',"why":', text));
`;

test("LineLogger writes every line whole and in order, at exit too", () => {
  const texts: string[] = [];
  for (let i = 0; i < 3000; i++) texts.push(i % 7 === 0 ? `café ${i} 東京 😀` : `line ${i}`);
  texts.splice(1000, 0, "é".repeat(30_000)); // fits no partly filled batch
  texts.splice(2000, 0, "x".repeat(100_000)); // longer than a whole batch
  texts.push('quote " and \\ and \n');
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", SCRIPT], {
    input: JSON.stringify(texts),
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(r.status, 0, r.stderr.slice(0, 500));
  const lines = r.stderr.split("\n");
  assert.equal(lines.pop(), "", "the output ends with a newline");
  assert.equal(lines.length, texts.length);
  lines.forEach((line, i) => {
    const parsed = JSON.parse(line) as { level: number; id: number; why: string; msg: string };
    assert.equal(parsed.id, i);
    assert.equal(parsed.why, texts[i]);
    assert.equal(parsed.level, 30);
    assert.equal(parsed.msg, "connection closed");
  });
});
