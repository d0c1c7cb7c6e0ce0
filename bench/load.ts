/**
 * Idle-connection generator, run as child processes (bench/workers.ts forks them) so 10,000 client
 * sockets are spread over processes. It opens SOCKS5 connections through the proxy, holds them, and
 * checks later that each one still carries data. One job per IPC message.
 */
import net from "node:net";
import { connectRequest, GREETING, replyLength } from "./socks-wire.js";

export interface Endpoint {
  host: string;
  port: number;
}

interface Route {
  via: Endpoint;
  target: Endpoint;
  timeoutMs: number;
}

export type Job =
  | ({ op: "idle-open"; count: number; concurrency: number } & Route)
  | { op: "idle-check"; timeoutMs: number }
  | { op: "idle-close" };

export interface Tally {
  ok: number;
  failed: number;
  /** Failure reasons with their counts, for the report. */
  errors: Record<string, number>;
}

export interface IdleCheck {
  received: number;
  lost: number;
}

function note(t: Tally, err: unknown): void {
  t.failed++;
  const reason = err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.message) : String(err);
  t.errors[reason] = (t.errors[reason] ?? 0) + 1;
}

interface Dialed {
  sock: net.Socket;
  /** Payload bytes that arrived together with the CONNECT reply. */
  rest: Buffer;
}

/** Opens a connection to the target through the SOCKS5 proxy. */
function dial(route: Route): Promise<Dialed> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: route.via.host, port: route.via.port, noDelay: true });
    sock.setTimeout(route.timeoutMs, () => sock.destroy(new Error("timeout")));
    const fail = (err: Error) => {
      sock.destroy();
      reject(err);
    };
    const early = () => fail(new Error("closed during handshake"));
    sock.once("error", fail);
    sock.once("close", early);
    const done = (d: Dialed) => {
      sock.removeListener("error", fail);
      sock.removeListener("close", early);
      resolve(d);
    };
    let buf = Buffer.alloc(0);
    let greeted = false;
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      try {
        if (!greeted) {
          if (buf.length < 2) return;
          if (buf[0] !== 5 || buf[1] !== 0) return fail(new Error(`method reply ${buf[0]}/${buf[1]}`));
          greeted = true;
          buf = buf.subarray(2);
          sock.write(connectRequest(route.target.host, route.target.port));
        }
        const len = replyLength(buf);
        if (len === undefined || buf.length < len) return;
        if (buf[1] !== 0) return fail(new Error(`reply code ${buf[1]}`));
        sock.removeListener("data", onData);
        done({ sock, rest: buf.subarray(len) });
      } catch (e) {
        fail(e as Error);
      }
    };
    sock.on("data", onData);
    sock.once("connect", () => sock.write(GREETING));
  });
}

/** Idle connections held open between "idle-open" and "idle-close". */
const held = new Map<net.Socket, { received: boolean; closed: boolean }>();

async function idleOpen(job: Extract<Job, { op: "idle-open" }>): Promise<Tally> {
  const tally: Tally = { ok: 0, failed: 0, errors: {} };
  let left = job.count;
  const slot = async () => {
    while (left > 0) {
      left--;
      try {
        const { sock, rest } = await dial(job);
        sock.setTimeout(0);
        const state = { received: rest.length > 0, closed: false };
        held.set(sock, state);
        sock.on("data", () => {
          state.received = true;
        });
        sock.on("error", () => {});
        sock.on("close", () => {
          state.closed = true;
        });
        tally.ok++;
      } catch (e) {
        note(tally, e);
      }
    }
  };
  await Promise.all(Array.from({ length: job.concurrency }, slot));
  return tally;
}

/** Waits (bounded) until every held connection got the server's byte; the rest count as lost. */
async function idleCheck(timeoutMs: number): Promise<IdleCheck> {
  const deadline = Date.now() + timeoutMs;
  const settled = () => [...held.values()].filter((s) => s.received || s.closed).length;
  while (settled() < held.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const received = [...held.values()].filter((s) => s.received && !s.closed).length;
  return { received, lost: held.size - received };
}

function idleClose(): { closed: number } {
  const closed = held.size;
  for (const sock of held.keys()) sock.destroy();
  held.clear();
  return { closed };
}

function handle(job: Job): Promise<unknown> | unknown {
  switch (job.op) {
    case "idle-open":
      return idleOpen(job);
    case "idle-check":
      return idleCheck(job.timeoutMs);
    case "idle-close":
      return idleClose();
  }
}

if (process.send) {
  process.on("message", async (msg: { id: number; job: Job }) => {
    try {
      process.send!({ id: msg.id, result: await handle(msg.job) });
    } catch (e) {
      process.send!({ id: msg.id, error: e instanceof Error ? e.message : String(e) });
    }
  });
  // The orchestrator going away ends the worker, so no generator outlives a bench run.
  process.on("disconnect", () => process.exit(0));
}
