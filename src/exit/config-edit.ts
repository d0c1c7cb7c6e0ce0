import { readFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { isCollection, parseDocument } from "yaml";
import { yamlError } from "../config/load.js";
import { writeFileAtomic } from "../secrets/atomic.js";
import { OperationError } from "../util/errors.js";

/**
 * Sets dotted keys in a YAML config file (null removes a key), keeping its comments and layout (yaml's
 * Document API), with the atomic replace that keeps the file's owner, group, mode and symlink. A missing
 * file is created (0644: the config holds no secrets). Returns the keys whose value actually changed.
 */
export function setConfigValues(
  file: string,
  values: Record<string, string | Record<string, string> | null>,
): string[] {
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT")
      throw new OperationError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const doc = parseDocument(text);
  if (doc.errors.length) throw yamlError(file, doc.errors[0]);
  if (doc.contents === null) doc.contents = doc.createNode({}) as unknown as typeof doc.contents;
  const changed: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    const path = key.split(".");
    const now = doc.getIn(path);
    if (value === null ? now === undefined : isDeepStrictEqual(isCollection(now) ? now.toJSON() : now, value))
      continue;
    if (value === null) doc.deleteIn(path);
    else doc.setIn(path, value);
    changed.push(key);
  }
  if (changed.length) writeFileAtomic(file, doc.toString(), text ? undefined : 0o644);
  return changed;
}
