/** One doctor finding: what was checked, the verdict, what was seen, and what to do about it. */
export type Verdict = "pass" | "warn" | "fail" | "skip";

export interface CheckResult {
  name: string;
  verdict: Verdict;
  evidence: string;
  /** A concrete next step; absent when nothing needs doing. */
  fix?: string;
}

export const pass = (name: string, evidence: string): CheckResult => ({ name, verdict: "pass", evidence });
export const skip = (name: string, evidence: string): CheckResult => ({ name, verdict: "skip", evidence });
export const warn = (name: string, evidence: string, fix: string): CheckResult => ({
  name,
  verdict: "warn",
  evidence,
  fix,
});
export const fail = (name: string, evidence: string, fix: string): CheckResult => ({
  name,
  verdict: "fail",
  evidence,
  fix,
});

/** Doctor fails when any check fails; warnings and skips do not change the exit code. */
export const failed = (results: readonly CheckResult[]) => results.some((r) => r.verdict === "fail");
