/** The orchestrator's side of the load generators: a few forked bench/load.js processes. */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Job } from "./load.js";

interface Reply {
  id: number;
  result?: unknown;
  error?: string;
}

export class LoadWorkers {
  private readonly children: ChildProcess[];
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(count: number) {
    const script = fileURLToPath(new URL("./load.js", import.meta.url));
    this.children = Array.from({ length: count }, () => {
      const child = fork(script, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
      child.on("message", (m: Reply) => {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.error !== undefined) p?.reject(new Error(`load worker: ${m.error}`));
        else p?.resolve(m.result);
      });
      child.on("exit", (code) => {
        for (const p of this.pending.values()) p.reject(new Error(`load worker exited (${code})`));
        this.pending.clear();
      });
      return child;
    });
  }

  get size(): number {
    return this.children.length;
  }

  /** Runs `jobOf(i)` on the first `n` workers at once and returns their results in order. */
  run<T>(n: number, jobOf: (i: number) => Job): Promise<T[]> {
    return Promise.all(
      this.children.slice(0, n).map(
        (child, i) =>
          new Promise<T>((resolve, reject) => {
            const id = this.nextId++;
            this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
            child.send({ id, job: jobOf(i) });
          }),
      ),
    );
  }

  close(): void {
    for (const c of this.children) if (c.connected) c.disconnect();
  }
}
