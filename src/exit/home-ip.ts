import ipaddr from "ipaddr.js";
import { OperationError } from "../util/errors.js";

/**
 * The home network's public address as seen from outside: the first of `urls` that answers with a bare IP
 * address (ipify-style plain text) wins; the others are the fallback.
 */
export async function detectHomeIp(urls: string[], timeoutMs = 5000): Promise<string> {
  const failures: string[] = [];
  for (const url of urls) {
    try {
      const res = await fetch(url, {
        signal: AbortSignal.timeout(timeoutMs),
        headers: { accept: "text/plain" },
      });
      const text = (await res.text()).trim();
      if (!res.ok) failures.push(`${url}: HTTP ${res.status}`);
      else if (!ipaddr.IPv4.isValidFourPartDecimal(text) && !ipaddr.IPv6.isValid(text))
        failures.push(`${url}: answer is not an IP address`);
      else return ipaddr.process(text).toString();
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } };
      failures.push(`${url}: ${err.cause?.code ?? err.cause?.message ?? err.message}`);
    }
  }
  throw new OperationError(
    `cannot detect the home IP (${failures.join("; ") || "no exit.homeIpUrls"}); set exit.homeIpUrls, or exit.sshAllowFrom / --home-ip`,
  );
}
