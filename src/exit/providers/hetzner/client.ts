import { OperationError, UsageError, UserError } from "../../../util/errors.js";
import { log } from "../../../util/log.js";
import type {
  Action,
  ApiErrorBody,
  CreateFirewallRequest,
  CreateServerRequest,
  CreateServerResponse,
  Firewall,
  FirewallResource,
  FirewallRule,
  Location,
  Pagination,
  Pricing,
  Server,
  ServerType,
  SshKey,
} from "./types.js";

/** Typed client for the parts of the Hetzner Cloud API wg-egress uses (https://docs.hetzner.cloud). */

export const DEFAULT_ENDPOINT = "https://api.hetzner.cloud/v1";

/** An error answer of the API: `{"error": {"code", "message", "details"}}` with its HTTP status. */
export class HetznerApiError extends UserError {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly apiMessage: string,
    readonly details: Record<string, unknown> | null,
    message: string,
  ) {
    super(message, 1);
    this.name = "HetznerApiError";
  }
}

export interface ClientOptions {
  token: string;
  /** Where the token came from ("HCLOUD_TOKEN", "the token in FILE"): named when the API rejects it. */
  tokenSource?: string;
  endpoint?: string;
  /** Retries of a rate-limited (429) request before giving up. */
  maxRetries?: number;
  /** Longest single wait between retries. */
  maxWaitMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Told about each wait, so the CLI can say why it pauses. */
  onRateLimited?: (waitMs: number, attempt: number) => void;
}

export interface ListQuery {
  name?: string;
  label_selector?: string;
  /** Actions only: any of these statuses. */
  status?: string[];
}

const PER_PAGE = 50;
const MAX_PAGES = 100;

/** `k=v,k2=v2`: the label selector matching all of `labels`. */
export function labelSelector(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

export function hasLabels(
  resource: { labels: Record<string, string> },
  labels: Record<string, string>,
): boolean {
  return Object.entries(labels).every(([k, v]) => resource.labels[k] === v);
}

function fieldDetails(details: Record<string, unknown> | null | undefined): string {
  const fields = (details?.fields ?? []) as { name: string; messages: string[] }[];
  return fields.length ? ` (${fields.map((f) => `${f.name}: ${f.messages.join(", ")}`).join("; ")})` : "";
}

/** The one-line message for an API error: what happened and what to do about it. */
function explain(status: number, body: ApiErrorBody["error"], what: string, source: string): string {
  const replace =
    source === "HCLOUD_TOKEN"
      ? "set HCLOUD_TOKEN to it"
      : "store it with: wg-egress secrets set-token --token-stdin";
  switch (body.code) {
    case "unauthorized":
      return `${source} rejected by the API: ${body.message}; create a read/write token in the Hetzner Console (Security → API tokens) and ${replace}`;
    case "forbidden":
      return `${source} may not ${what}: ${body.message}; use a token with read/write permission and ${replace}`;
    case "resource_limit_exceeded":
      return `Hetzner resource limit reached (${what}): ${body.message}; delete unused resources or ask Hetzner to raise the limit`;
    case "rate_limit_exceeded":
      return `Hetzner API rate limit exceeded (${what}): ${body.message}; wait a while and run the command again`;
    default:
      return `Hetzner API ${what} failed: ${body.code} (HTTP ${status}): ${body.message}${fieldDetails(body.details)}`;
  }
}

/** HCLOUD_ENDPOINT as the hcloud CLI takes it: an http(s) URL; anything else is a one-line error now. */
function checkEndpoint(endpoint: string): string {
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== "https:" && url.protocol !== "http:"))
    throw new UsageError(
      `HCLOUD_ENDPOINT ${JSON.stringify(endpoint)} is not an http(s) URL: use the form ${DEFAULT_ENDPOINT} (with the scheme), or unset it for Hetzner's API`,
    );
  return endpoint.replace(/\/+$/, "");
}

export class HetznerClient {
  readonly endpoint: string;
  private readonly token: string;
  private readonly tokenSource: string;
  private readonly maxRetries: number;
  private readonly maxWaitMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly onRateLimited?: (waitMs: number, attempt: number) => void;

  constructor(opts: ClientOptions) {
    this.token = opts.token;
    this.tokenSource = opts.tokenSource ?? "HCLOUD_TOKEN";
    this.endpoint = checkEndpoint(opts.endpoint ?? DEFAULT_ENDPOINT);
    this.maxRetries = opts.maxRetries ?? 5;
    this.maxWaitMs = opts.maxWaitMs ?? 60_000;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.onRateLimited = opts.onRateLimited;
  }

  /**
   * How long to wait before retrying a 429. RateLimit-Reset is when the budget is full again; the API refills
   * it gradually, so we wait until then or for an exponential backoff, whichever is shorter.
   */
  private retryDelay(headers: Headers, attempt: number): number {
    const backoff = Math.min(1000 * 2 ** attempt, this.maxWaitMs);
    const reset = Number(headers.get("ratelimit-reset"));
    if (!Number.isFinite(reset) || reset <= 0) return backoff;
    // The header has one-second resolution: wait at least a little, so we never spin on a stale value.
    return Math.max(Math.min(reset * 1000 - Date.now() + 50, backoff), 200);
  }

  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    query?: Record<string, string | number | string[] | undefined>,
  ): Promise<T> {
    const url = new URL(this.endpoint + path);
    for (const [k, v] of Object.entries(query ?? {}))
      for (const one of Array.isArray(v) ? v : [v])
        if (one !== undefined && one !== "") url.searchParams.append(k, String(one));
    const what = `${method} ${path}`;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers: {
            authorization: `Bearer ${this.token}`,
            ...(body === undefined ? {} : { "content-type": "application/json" }),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(30_000),
        });
      } catch (e) {
        const err = e as Error & { cause?: { code?: string; message?: string } };
        const cause = err.cause?.code ?? err.cause?.message ?? err.message;
        throw new OperationError(
          `cannot reach the Hetzner API at ${this.endpoint} (${what}): ${cause}; check HCLOUD_ENDPOINT and the network`,
        );
      }
      log.debug(
        { method, path, status: res.status, remaining: res.headers.get("ratelimit-remaining") },
        "hcloud",
      );
      const text = await res.text();
      if (res.ok) return (text ? JSON.parse(text) : {}) as T;
      let err: ApiErrorBody["error"];
      try {
        err = (JSON.parse(text) as ApiErrorBody).error;
        if (!err?.code) throw new Error("no error object");
      } catch {
        err = { code: `http_${res.status}`, message: text.slice(0, 200) || res.statusText };
      }
      if (res.status === 429 && attempt < this.maxRetries) {
        const wait = this.retryDelay(res.headers, attempt);
        this.onRateLimited?.(wait, attempt + 1);
        await this.sleep(wait);
        continue;
      }
      throw new HetznerApiError(
        res.status,
        err.code,
        err.message,
        err.details ?? null,
        explain(res.status, err, what, this.tokenSource),
      );
    }
  }

  /** Every item of a paginated list, following meta.pagination.next_page. */
  async listAll<T>(path: string, key: string, query: ListQuery = {}): Promise<T[]> {
    const items: T[] = [];
    let page: number | null = 1;
    for (let n = 0; page !== null && n < MAX_PAGES; n++) {
      const res: Record<string, unknown> & { meta?: { pagination?: Pagination } } = await this.request(
        "GET",
        path,
        undefined,
        {
          ...query,
          page,
          per_page: PER_PAGE,
        },
      );
      items.push(...((res[key] as T[]) ?? []));
      page = res.meta?.pagination?.next_page ?? null;
    }
    return items;
  }

  listServers(query: ListQuery = {}): Promise<Server[]> {
    return this.listAll("/servers", "servers", query);
  }

  async getServer(id: number): Promise<Server> {
    return (await this.request<{ server: Server }>("GET", `/servers/${id}`)).server;
  }

  createServer(req: CreateServerRequest): Promise<CreateServerResponse> {
    return this.request("POST", "/servers", req);
  }

  async deleteServer(id: number): Promise<Action> {
    return (await this.request<{ action: Action }>("DELETE", `/servers/${id}`)).action;
  }

  /** The server's actions, optionally only those with these statuses (running, success, error). */
  listServerActions(id: number, status: Action["status"][] = []): Promise<Action[]> {
    return this.listAll(`/servers/${id}/actions`, "actions", { status });
  }

  /** Sets the PTR record of one of the server's primary IPs (null: back to Hetzner's default). */
  async changeDnsPtr(id: number, ip: string, dnsPtr: string | null): Promise<Action> {
    return (
      await this.request<{ action: Action }>("POST", `/servers/${id}/actions/change_dns_ptr`, {
        ip,
        dns_ptr: dnsPtr,
      })
    ).action;
  }

  listFirewalls(query: ListQuery = {}): Promise<Firewall[]> {
    return this.listAll("/firewalls", "firewalls", query);
  }

  async getFirewall(id: number): Promise<Firewall> {
    return (await this.request<{ firewall: Firewall }>("GET", `/firewalls/${id}`)).firewall;
  }

  createFirewall(req: CreateFirewallRequest): Promise<{ firewall: Firewall; actions: Action[] }> {
    return this.request("POST", "/firewalls", req);
  }

  async setFirewallRules(id: number, rules: FirewallRule[]): Promise<Action[]> {
    return (
      await this.request<{ actions: Action[] }>("POST", `/firewalls/${id}/actions/set_rules`, { rules })
    ).actions;
  }

  async applyFirewall(id: number, applyTo: FirewallResource[]): Promise<Action[]> {
    return (
      await this.request<{ actions: Action[] }>("POST", `/firewalls/${id}/actions/apply_to_resources`, {
        apply_to: applyTo,
      })
    ).actions;
  }

  async removeFirewall(id: number, removeFrom: FirewallResource[]): Promise<Action[]> {
    return (
      await this.request<{ actions: Action[] }>("POST", `/firewalls/${id}/actions/remove_from_resources`, {
        remove_from: removeFrom,
      })
    ).actions;
  }

  async deleteFirewall(id: number): Promise<void> {
    await this.request("DELETE", `/firewalls/${id}`);
  }

  async getAction(id: number): Promise<Action> {
    return (await this.request<{ action: Action }>("GET", `/actions/${id}`)).action;
  }

  listServerTypes(query: ListQuery = {}): Promise<ServerType[]> {
    return this.listAll("/server_types", "server_types", query);
  }

  listLocations(query: ListQuery = {}): Promise<Location[]> {
    return this.listAll("/locations", "locations", query);
  }

  listSshKeys(query: ListQuery = {}): Promise<SshKey[]> {
    return this.listAll("/ssh_keys", "ssh_keys", query);
  }

  async getPricing(): Promise<Pricing> {
    return (await this.request<{ pricing: Pricing }>("GET", "/pricing")).pricing;
  }
}
