import { connect, type Socket } from "node:net";
import {
  CMD,
  METHOD,
  MORE,
  type Parsed,
  parseReply,
  serializeAuthRequest,
  serializeGreeting,
  serializeRequest,
} from "../socks/protocol.js";
import { replyName } from "../socks/replies.js";
import type { HostPort } from "../util/hostport.js";

/**
 * The smallest SOCKS5 client doctor needs: TCP connect, greet, optional RFC 1929 login, CONNECT.
 * Messages come from the proxy's own protocol module, so client and server agree by construction.
 */

export class SocksReplyError extends Error {
  constructor(readonly reply: number) {
    super(`the proxy refused: SOCKS reply ${reply} (${replyName(reply)})`);
  }
}

/** Feeds incoming bytes to `parse` until it has a whole message; leftover bytes go back to the socket. */
function readMessage<T>(sock: Socket, parse: (b: Uint8Array) => Parsed<T>, proxy: HostPort): Promise<T> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const r = parse(buf);
      if (r.status === "more") return;
      cleanup();
      if (r.status === "error")
        return reject(new Error(`bad answer from ${proxy.host}:${proxy.port}: ${r.message}`));
      if (buf.length > r.length) sock.unshift(buf.subarray(r.length));
      resolve(r.value);
    };
    const onEnd = () => fail(new Error("the proxy closed the connection"));
    const fail = (e: Error) => {
      cleanup();
      reject(e);
    };
    const cleanup = () => sock.off("data", onData).off("end", onEnd).off("error", fail);
    sock.on("data", onData).on("end", onEnd).on("error", fail);
  });
}

/** The method choice and the RFC 1929 status are both two bytes: VER, value. */
const twoBytes = (b: Uint8Array): Parsed<number[]> =>
  b.length < 2 ? MORE : { status: "ok", value: [b[0], b[1]], length: 2 };

/** The method choice; anything but VER 5 is some other server on that port (an HTTP one says "HT…"). */
const methodChoice = (b: Uint8Array): Parsed<number> => {
  if (b.length && b[0] !== 5) {
    const text = Buffer.from(b.subarray(0, 40)).toString("latin1").split(/\r?\n/)[0];
    const shown = /^[\x20-\x7e]+$/.test(text)
      ? `"${text}"`
      : `bytes ${Buffer.from(b.subarray(0, 8)).toString("hex")}`;
    return { status: "error", message: `not a SOCKS5 server: it answered ${shown}` };
  }
  return b.length < 2 ? MORE : { status: "ok", value: b[1], length: 2 };
};

/** Resolves with a socket relayed to host:port (a name is resolved by the proxy), or rejects. */
export async function socksConnect(
  proxy: HostPort,
  host: string,
  port: number,
  opts: { username?: string; password?: string; timeoutMs?: number } = {},
): Promise<Socket> {
  const sock = connect({ host: proxy.host, port: proxy.port });
  sock.setTimeout(opts.timeoutMs ?? 10_000, () => sock.destroy(new Error("timed out talking to the proxy")));
  try {
    await new Promise<void>((resolve, reject) => sock.once("connect", resolve).once("error", reject));
    const auth = opts.username !== undefined;
    sock.write(serializeGreeting(auth ? [METHOD.noAuth, METHOD.userPass] : [METHOD.noAuth]));
    const method = await readMessage(sock, methodChoice, proxy);
    if (method === METHOD.noAcceptable)
      throw new Error(
        auth
          ? "the proxy accepts neither no authentication nor our username/password"
          : "the proxy requires authentication: doctor logs in as the first of proxy.users",
      );
    if (method === METHOD.userPass && auth) {
      sock.write(serializeAuthRequest({ username: opts.username!, password: opts.password ?? "" }));
      const [, status] = await readMessage(sock, twoBytes, proxy);
      if (status !== 0) throw new Error("the proxy rejected the username/password");
    } else if (method !== METHOD.noAuth) throw new Error(`the proxy wants auth method ${method}`);
    sock.write(serializeRequest(CMD.connect, host, port));
    const reply = await readMessage(sock, parseReply, proxy);
    if (reply.code !== 0) throw new SocksReplyError(reply.code);
    return sock;
  } catch (e) {
    sock.destroy();
    throw e;
  }
}
