import type { CheckResult, Verdict } from "./check.js";

/** Human output: one line per check, the fix indented below; colours only when asked (a TTY). */

const COLOUR: Record<Verdict, string> = { pass: "32", warn: "33", fail: "31", skip: "90" };

export function formatResults(results: readonly CheckResult[], colour: boolean): string {
  const paint = (v: Verdict, s: string) => (colour ? `\x1b[${COLOUR[v]}m${s}\x1b[0m` : s);
  const width = Math.max(...results.map((r) => r.name.length));
  const lines = results.flatMap((r) => [
    `${paint(r.verdict, r.verdict.toUpperCase().padEnd(4))}  ${r.name.padEnd(width)}  ${r.evidence}`,
    ...(r.fix && r.verdict !== "pass" ? [`      ${" ".repeat(width)}  fix: ${r.fix}`] : []),
  ]);
  const count = (v: Verdict) => results.filter((r) => r.verdict === v).length;
  lines.push(
    "",
    `summary — pass ${count("pass")}, fail ${count("fail")}, warn ${count("warn")}, skip ${count("skip")}`,
  );
  return `${lines.join("\n")}\n`;
}
