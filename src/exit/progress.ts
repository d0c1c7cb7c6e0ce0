/**
 * Progress on stderr (stdout stays for results): on a terminal one line redrawn in place, otherwise plain
 * lines, one per change, so timers and CI logs stay readable.
 */
export class Progress {
  private last = "";
  private open = false;

  constructor(private readonly out: { write(s: string): unknown; isTTY?: boolean } = process.stderr) {}

  update(label: string, percent: number): void {
    const line = `${label}: ${Math.round(percent)}%`;
    if (line === this.last) return;
    this.last = line;
    if (this.out.isTTY) {
      this.out.write(`\r\x1b[K${line}`);
      this.open = true;
    } else this.out.write(`${line}\n`);
  }

  /** A message line, ending any in-place line first. */
  note(message: string): void {
    this.end();
    this.out.write(`${message}\n`);
  }

  end(): void {
    if (this.open) this.out.write("\n");
    this.open = false;
    this.last = "";
  }
}
