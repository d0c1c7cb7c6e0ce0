/** What a renderer produces: files to install (relative paths) or print. */
export interface RenderedFile {
  path: string;
  content: string;
}

/** All files on stdout, each after a comment line naming where it goes. */
export function concatFiles(files: readonly RenderedFile[], comment = "#"): string {
  return files.map((f) => `${comment} ---- ${f.path}\n${f.content}`).join("\n");
}
