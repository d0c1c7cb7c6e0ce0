/**
 * Hetzner label selectors as the API documents them: comma-separated expressions, all of which must match:
 * `k=v` / `k==v`, `k!=v`, `k` (present), `!k` (absent), `k in (a,b)`, `k notin (a,b)`.
 */

type Matcher = (labels: Record<string, string>) => boolean;

function splitTopLevel(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of selector) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      parts.push(cur);
      cur = "";
    } else cur += ch;
  }
  parts.push(cur);
  return parts.map((p) => p.trim());
}

function expression(expr: string): Matcher {
  let m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(expr);
  if (m) {
    const [, key, op, list] = m;
    const values = list.split(",").map((v) => v.trim());
    return op === "in"
      ? (l) => key in l && values.includes(l[key])
      : (l) => !(key in l) || !values.includes(l[key]);
  }
  m = /^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$/.exec(expr);
  if (m) {
    const [, key, op, value] = m;
    return op === "!=" ? (l) => l[key] !== value : (l) => l[key] === value;
  }
  m = /^(!?)([\w./-]+)$/.exec(expr);
  if (m) {
    const [, not, key] = m;
    return not ? (l) => !(key in l) : (l) => key in l;
  }
  throw new Error(`invalid label selector expression "${expr}"`);
}

/** Compiles a selector; throws on a malformed expression (the fake answers invalid_input). */
export function compileLabelSelector(selector: string): Matcher {
  const matchers = splitTopLevel(selector).filter(Boolean).map(expression);
  return (labels) => matchers.every((m) => m(labels));
}
