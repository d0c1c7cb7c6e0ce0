/** Real SOCKS5 clients through `wg-egress proxy` (child process) to servers on loopback. */
import assert from "node:assert/strict";
import { once } from "node:events";
import { after, before, test } from "node:test";
import { SocksClient } from "socks";
import { run } from "../../src/util/run.js";
import { writeTemp } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";
import {
  connectStatus,
  curl,
  echoServer,
  httpServer,
  LOOPBACK_ALLOW,
  type ProxyProcess,
  runPySocks,
  startProxy,
} from "./proxy-helpers.js";

before(() => requireTools("curl", "ncat", "proxychains4", "/usr/bin/python3"));

const BODY = `hello-${process.pid}-${Date.now()}`;

let proxy: ProxyProcess;
let port6: number;
let http4: Awaited<ReturnType<typeof httpServer>>;
let http6: Awaited<ReturnType<typeof httpServer>>;
let echo: Awaited<ReturnType<typeof echoServer>>;

before(async () => {
  http4 = await httpServer(BODY);
  http6 = await httpServer(BODY, "::1");
  echo = await echoServer();
  proxy = await startProxy(["--listen", "127.0.0.1:0", "--listen", "[::1]:0", ...LOOPBACK_ALLOW], {
    listeners: 2,
  });
  port6 = Number(proxy.addresses[1].split(":").at(-1));
  assert.match(proxy.addresses[1], /^\[::1\]:\d+$/);
});

after(async () => {
  await proxy.stop();
  http4.server.close();
  http6.server.close();
  echo.server.close();
});

test("curl --socks5 to an IPv4 destination, and to IPv6 [::1]", async () => {
  const r = await curl(["--socks5", `127.0.0.1:${proxy.port}`, `http://127.0.0.1:${http4.port}/`]);
  assert.equal(r.stdout, BODY, r.stderr);
  const r6 = await curl(["--socks5", `127.0.0.1:${proxy.port}`, `http://[::1]:${http6.port}/`]);
  assert.equal(r6.stdout, BODY, r6.stderr);
});

test("curl --socks5-hostname: the proxy resolves localhost", async () => {
  const r = await curl(["--socks5-hostname", `127.0.0.1:${proxy.port}`, `http://localhost:${http4.port}/`]);
  assert.equal(r.stdout, BODY, r.stderr);
  const line = await proxy.waitLog((l) => l.destination === `localhost:${http4.port}`);
  assert.equal(line.resolved, "127.0.0.1");
  assert.equal(line.reply, 0);
});

test("the proxy also serves on its IPv6 listen address [::1]", async () => {
  const r = await curl(["--socks5", `[::1]:${port6}`, `http://127.0.0.1:${http4.port}/`]);
  assert.equal(r.stdout, BODY, r.stderr);
});

test("ncat --proxy-type socks5 (stdin EOF half-closes; the echo still comes back)", async () => {
  const r = await run(
    "ncat",
    ["--proxy", `127.0.0.1:${proxy.port}`, "--proxy-type", "socks5", "127.0.0.1", String(echo.port)],
    { input: "ping through ncat\n", timeoutMs: 10_000, allowFail: true },
  );
  assert.equal(r.stdout, "ping through ncat\n", r.stderr);
});

test("PySocks", async () => {
  const r = await runPySocks(proxy.port, "stream", [
    `s.connect(("127.0.0.1", ${http4.port}))`,
    's.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")',
    'data = b""',
    "while True:",
    "    chunk = s.recv(65536)",
    "    if not chunk: break",
    "    data += chunk",
    "sys.stdout.write(data.decode())",
  ]);
  assert.ok(r.stdout.endsWith(BODY), r.stderr);
});

test("proxychains4 wrapping curl", async () => {
  const conf = writeTemp(
    "proxychains.conf",
    `strict_chain\nquiet_mode\n[ProxyList]\nsocks5 127.0.0.1 ${proxy.port}\n`,
  );
  const r = await run(
    "proxychains4",
    ["-q", "-f", conf, "curl", "-sS", "--max-time", "10", `http://127.0.0.1:${http4.port}/`],
    {
      allowFail: true,
      timeoutMs: 15_000,
    },
  );
  assert.equal(r.stdout, BODY, r.stderr);
  await proxy.waitLog((l) => l.destination === `127.0.0.1:${http4.port}` && l.result === "ok");
});

test("npm socks client (SocksClient.createConnection) gets the real bound address and echoes", async () => {
  const { socket, remoteHost } = await SocksClient.createConnection({
    proxy: { host: "127.0.0.1", port: proxy.port, type: 5 },
    command: "connect",
    destination: { host: "127.0.0.1", port: echo.port },
    timeout: 5000,
  });
  socket.write("npm-socks");
  const [data] = await once(socket, "data");
  assert.equal(String(data), "npm-socks");
  // the bound address is the proxy's outbound socket, which the echo server sees as its peer
  assert.equal(remoteHost?.host, "127.0.0.1");
  const peerPorts = echo.sockets.map((s) => s.remotePort);
  assert.ok(peerPorts.includes(remoteHost?.port), `bound port ${remoteHost?.port} not among ${peerPorts}`);
  socket.destroy();
});

test("HTTP CONNECT on the same port: tunnel works, policy refusal is 403", async () => {
  const ok = await curl([
    "-p",
    "--proxy",
    `http://127.0.0.1:${proxy.port}`,
    `http://127.0.0.1:${http4.port}/`,
  ]);
  assert.equal(ok.stdout, BODY, ok.stderr);
  assert.equal(await connectStatus(proxy.port, "http://10.20.30.40:80/"), "403");
  const plain = await curl([
    "--proxy",
    `http://127.0.0.1:${proxy.port}`,
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    `http://127.0.0.1:${http4.port}/`,
  ]);
  assert.equal(plain.stdout, "405");
});

test("--no-http-connect: an HTTP request on the SOCKS port is closed unanswered", async () => {
  const socksOnly = await startProxy([...LOOPBACK_ALLOW, "--no-http-connect"]);
  try {
    assert.equal(await connectStatus(socksOnly.port, `http://127.0.0.1:${http4.port}/`), "000");
    const r = await curl(["--socks5", `127.0.0.1:${socksOnly.port}`, `http://127.0.0.1:${http4.port}/`]);
    assert.equal(r.stdout, BODY, r.stderr);
  } finally {
    await socksOnly.stop();
  }
});
