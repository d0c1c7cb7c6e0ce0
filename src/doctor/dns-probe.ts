import type { DnsConfig } from "../policy/resolve.js";
import { DestinationResolver } from "../policy/resolve.js";

/**
 * Run by doctor as the proxy's uid (`node dns-probe.js '{"servers":[…],"name":"…",…}'`): resolves one
 * name with the proxy's own resolver code and settings, prints {"answered": bool, "error"?: code}.
 * "No such name" is an answer too: the resolver was reached and replied.
 */

const { name, ...dns } = JSON.parse(process.argv[2] ?? "{}") as DnsConfig & { name: string };
try {
  await new DestinationResolver(dns).resolve(name);
  process.stdout.write(`${JSON.stringify({ answered: true })}\n`);
} catch (e) {
  const code = (e as { code?: string }).code ?? String(e);
  process.stdout.write(
    `${JSON.stringify({ answered: code === "ENOTFOUND" || code === "ENODATA", error: code })}\n`,
  );
}
