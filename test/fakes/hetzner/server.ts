import {
  createServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import type {
  Action,
  Firewall,
  FirewallResource,
  FirewallRule,
  Location,
  Server,
  ServerType,
  SshKey,
} from "../../../src/exit/providers/hetzner/types.js";
import { compileLabelSelector } from "./label-selector.js";

/**
 * A local fake of the Hetzner Cloud API, built from its public documentation: same paths, bodies, error
 * format ({"error":{"code","message","details"}}), Bearer auth, actions that run and then succeed (or fail,
 * when told to: `failActions`), a server's actions list, label selectors, name filters, pagination
 * (meta.pagination), rate-limit headers with a configurable budget, server types with per-location prices,
 * GET /pricing (primary IPs are billed on top of the server), reverse DNS (change_dns_ptr; the default PTR
 * is Hetzner's static.….clients.your-server.de), a server's firewalls "pending" until the applying action
 * finished, uniqueness and resource-in-use errors. In-memory, loopback only.
 * Addresses handed out are from the documentation ranges (203.0.113.0/24, 2001:db8::/32): never contacted.
 */

export interface FakeOptions {
  token?: string;
  /** GET /actions/{id} polls an action needs before it reports success. */
  actionPolls?: number;
  /** Instead of counting polls: an action succeeds once it has run this long. */
  actionMs?: number;
  /** Requests allowed per window before 429 rate_limit_exceeded. */
  rateLimit?: number;
  rateWindowMs?: number;
  /** Most servers the "account" may have (resource_limit_exceeded beyond it). */
  serverLimit?: number;
  /** Action commands (e.g. create_server) that end in status "error" with this error instead of succeeding. */
  failActions?: Record<string, { code: string; message: string }>;
}

const LOCATIONS: Location[] = [
  {
    id: 1,
    name: "fsn1",
    description: "Falkenstein DC Park 1",
    country: "DE",
    city: "Falkenstein",
    network_zone: "eu-central",
  },
  {
    id: 2,
    name: "nbg1",
    description: "Nuremberg DC Park 1",
    country: "DE",
    city: "Nuremberg",
    network_zone: "eu-central",
  },
  {
    id: 3,
    name: "hel1",
    description: "Helsinki DC Park 1",
    country: "FI",
    city: "Helsinki",
    network_zone: "eu-central",
  },
  {
    id: 4,
    name: "ash",
    description: "Ashburn, VA",
    country: "US",
    city: "Ashburn, VA",
    network_zone: "us-east",
  },
  {
    id: 5,
    name: "hil",
    description: "Hillsboro, OR",
    country: "US",
    city: "Hillsboro, OR",
    network_zone: "us-west",
  },
];

const price = (location: string, monthlyNet: number) => ({
  location,
  price_hourly: { net: (monthlyNet / 730).toFixed(10), gross: ((monthlyNet / 730) * 1.19).toFixed(10) },
  price_monthly: { net: monthlyNet.toFixed(10), gross: (monthlyNet * 1.19).toFixed(10) },
});

/** Primary IPv4 per location, €/month net (IPv6 is free), as GET /pricing reports it. */
const PRIMARY_IPV4_NET = 0.5;

/** Made-up but shaped like the real list: the ARM type only in the EU, one type in every location. */
const SERVER_TYPES: ServerType[] = [
  {
    id: 45,
    name: "cax11",
    description: "CAX11",
    cores: 2,
    memory: 4,
    disk: 40,
    architecture: "arm",
    deprecated: false,
    prices: ["fsn1", "nbg1", "hel1"].map((l) => price(l, 3.29)),
  },
  {
    id: 22,
    name: "cpx11",
    description: "CPX 11",
    cores: 2,
    memory: 2,
    disk: 40,
    architecture: "x86",
    deprecated: false,
    prices: [
      price("fsn1", 3.85),
      price("nbg1", 3.85),
      price("hel1", 3.85),
      price("ash", 4.49),
      price("hil", 4.49),
    ],
  },
];

type Json = Record<string, unknown>;

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Json | null = null,
  ) {
    super(message);
  }
}

interface PendingAction {
  action: Action;
  pollsLeft: number;
  onSuccess?: () => void;
  onFailure?: () => void;
}

export class FakeHetzner {
  readonly token: string;
  url = "";
  readonly servers = new Map<number, Server>();
  readonly firewalls = new Map<number, Firewall>();
  readonly actions = new Map<number, PendingAction>();
  readonly sshKeys: SshKey[] = [];
  /** Every request, for tests that check what was (not) called. */
  readonly requests: { method: string; path: string; body: unknown }[] = [];
  /** Number of 429 answers given. */
  rateLimited = 0;
  private nextId = 1000;
  private remaining: number;
  private windowEnd = 0;
  private http?: HttpServer;

  constructor(readonly opts: FakeOptions = {}) {
    this.token = opts.token ?? "fake-token-0123456789";
    this.remaining = opts.rateLimit ?? 3600;
  }

  async start(): Promise<this> {
    this.http = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.http!.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.http.address() as AddressInfo).port}/v1`;
    return this;
  }

  async close(): Promise<void> {
    this.http?.closeAllConnections();
    await new Promise<void>((r) => (this.http ? this.http.close(() => r()) : r()));
  }

  /** Adds a resource as if created in the Console (e.g. one without our labels). */
  seedServer(name: string, labels: Record<string, string> = {}): Server {
    return this.makeServer(name, labels, "cax11", "fsn1", "running");
  }

  seedSshKey(name: string, publicKey: string): SshKey {
    const key = {
      id: this.id(),
      name,
      fingerprint: `fa:ke:${this.nextId}`,
      public_key: publicKey,
      labels: {},
    };
    this.sshKeys.push(key);
    return key;
  }

  private id(): number {
    return this.nextId++;
  }

  private rateHeaders(res: ServerResponse): boolean {
    const limit = this.opts.rateLimit ?? 3600;
    const windowMs = this.opts.rateWindowMs ?? 3_600_000;
    const now = Date.now();
    if (now >= this.windowEnd) {
      this.windowEnd = now + windowMs;
      this.remaining = limit;
    }
    const allowed = this.remaining > 0;
    if (allowed) this.remaining--;
    res.setHeader("RateLimit-Limit", String(limit));
    res.setHeader("RateLimit-Remaining", String(this.remaining));
    res.setHeader("RateLimit-Reset", String(Math.ceil(this.windowEnd / 1000)));
    return allowed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake");
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    let status = 200;
    let out: unknown;
    try {
      let body: Json = {};
      if (raw) {
        try {
          body = JSON.parse(raw) as Json;
        } catch {
          throw new ApiError(400, "json_error", "invalid JSON in request body");
        }
      }
      this.requests.push({ method: req.method ?? "", path: url.pathname, body });
      if (req.headers.authorization !== `Bearer ${this.token}`)
        throw new ApiError(401, "unauthorized", "unable to authenticate");
      if (!this.rateHeaders(res)) {
        this.rateLimited++;
        throw new ApiError(429, "rate_limit_exceeded", "limit of requests per hour reached");
      }
      [status, out] = this.route(req.method ?? "GET", url, body);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      status = e.status;
      out = { error: { code: e.code, message: e.message, details: e.details } };
    }
    res.statusCode = status;
    if (status === 204) return void res.end();
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(out));
  }

  private route(method: string, url: URL, body: Json): [number, unknown] {
    const p = url.pathname.replace(/^\/v1/, "");
    const q = url.searchParams;
    const at = (re: RegExp) => re.exec(p)?.slice(1);
    if (p === "/servers" && method === "GET")
      return [200, this.list("servers", [...this.servers.values()], q)];
    if (p === "/servers" && method === "POST") return [201, this.createServer(body)];
    const serverActions = at(/^\/servers\/(\d+)\/actions$/)?.[0];
    if (serverActions && method === "GET") {
      const server = this.find(this.servers, serverActions, "server");
      const statuses = q.getAll("status");
      const actions = [...this.actions.values()]
        .map((a) => a.action)
        .filter((a) => a.resources.some((r) => r.type === "server" && r.id === server.id))
        .filter((a) => !statuses.length || statuses.includes(a.status));
      return [200, this.list("actions", actions, new URLSearchParams({ page: q.get("page") ?? "1" }))];
    }
    const dnsPtr = at(/^\/servers\/(\d+)\/actions\/change_dns_ptr$/)?.[0];
    if (dnsPtr && method === "POST")
      return [201, { action: this.changeDnsPtr(this.find(this.servers, dnsPtr, "server"), body) }];
    const serverId = at(/^\/servers\/(\d+)$/)?.[0];
    if (serverId) {
      const server = this.find(this.servers, serverId, "server");
      if (method === "GET") return [200, { server }];
      if (method === "DELETE") return [200, { action: this.deleteServer(server) }];
    }
    if (p === "/firewalls" && method === "GET")
      return [200, this.list("firewalls", [...this.firewalls.values()], q)];
    if (p === "/firewalls" && method === "POST") return [201, this.createFirewall(body)];
    const firewallId = at(/^\/firewalls\/(\d+)$/)?.[0];
    if (firewallId) {
      const fw = this.find(this.firewalls, firewallId, "firewall");
      if (method === "GET") return [200, { firewall: fw }];
      if (method === "DELETE") {
        if (fw.applied_to.length)
          throw new ApiError(422, "resource_in_use", "firewall is still applied to a resource");
        this.firewalls.delete(fw.id);
        return [204, undefined];
      }
    }
    const fwAction = at(
      /^\/firewalls\/(\d+)\/actions\/(set_rules|apply_to_resources|remove_from_resources)$/,
    );
    if (fwAction && method === "POST")
      return [
        201,
        {
          actions: this.firewallAction(this.find(this.firewalls, fwAction[0], "firewall"), fwAction[1], body),
        },
      ];
    const actionId = at(/^\/actions\/(\d+)$/)?.[0];
    if (actionId && method === "GET") return [200, { action: this.poll(Number(actionId)) }];
    if (p === "/server_types" && method === "GET") return [200, this.list("server_types", SERVER_TYPES, q)];
    if (p === "/locations" && method === "GET") return [200, this.list("locations", LOCATIONS, q)];
    if (p === "/ssh_keys" && method === "GET") return [200, this.list("ssh_keys", this.sshKeys, q)];
    if (p === "/pricing" && method === "GET") return [200, { pricing: this.pricing() }];
    throw new ApiError(404, "not_found", `no route ${method} ${p}`);
  }

  private find<T>(map: Map<number, T>, id: string, kind: string): T {
    const item = map.get(Number(id));
    if (!item) throw new ApiError(404, "not_found", `${kind} with ID '${id}' not found`);
    return item;
  }

  private list<T extends object>(key: string, all: T[], q: URLSearchParams): Json {
    let items = all;
    const name = q.get("name");
    const named = (i: T) => i as { name?: string; labels?: Record<string, string> };
    if (name) items = items.filter((i) => named(i).name === name);
    const selector = q.get("label_selector");
    if (selector) {
      let match: (l: Record<string, string>) => boolean;
      try {
        match = compileLabelSelector(selector);
      } catch (e) {
        throw new ApiError(400, "invalid_input", "invalid input in field 'label_selector'", {
          fields: [{ name: "label_selector", messages: [(e as Error).message] }],
        });
      }
      items = items.filter((i) => match(named(i).labels ?? {}));
    }
    const perPage = Math.min(Math.max(Number(q.get("per_page") ?? 25) || 25, 1), 50);
    const lastPage = Math.max(1, Math.ceil(items.length / perPage));
    const page = Math.max(Number(q.get("page") ?? 1) || 1, 1);
    return {
      [key]: items.slice((page - 1) * perPage, page * perPage),
      meta: {
        pagination: {
          page,
          per_page: perPage,
          previous_page: page > 1 ? page - 1 : null,
          next_page: page < lastPage ? page + 1 : null,
          last_page: lastPage,
          total_entries: items.length,
        },
      },
    };
  }

  private startAction(
    command: string,
    resources: { id: number; type: string }[],
    onSuccess?: () => void,
    onFailure?: () => void,
  ): Action {
    const action: Action = {
      id: this.id(),
      command,
      status: "running",
      progress: 0,
      started: new Date().toISOString(),
      finished: null,
      resources,
      error: null,
    };
    const pending = { action, pollsLeft: this.opts.actionPolls ?? 2, onSuccess, onFailure };
    this.actions.set(action.id, pending);
    if (this.opts.actionMs === undefined && pending.pollsLeft <= 0) this.finish(pending);
    return structuredClone(action);
  }

  private finish(p: PendingAction): void {
    const error = this.opts.failActions?.[p.action.command];
    p.action.status = error ? "error" : "success";
    p.action.error = error ? { ...error } : null;
    if (!error) p.action.progress = 100;
    p.action.finished = new Date().toISOString();
    (error ? p.onFailure : p.onSuccess)?.();
    p.onSuccess = p.onFailure = undefined;
  }

  private poll(id: number): Action {
    const p = this.actions.get(id);
    if (!p) throw new ApiError(404, "not_found", `action with ID '${id}' not found`);
    if (p.action.status === "running") {
      p.pollsLeft--;
      const ms = this.opts.actionMs;
      if (ms !== undefined ? Date.now() - Date.parse(p.action.started) >= ms : p.pollsLeft <= 0)
        this.finish(p);
      else
        p.action.progress = Math.min(
          99,
          p.action.progress + Math.ceil(100 / ((this.opts.actionPolls ?? 2) + 1)),
        );
    }
    return structuredClone(p.action);
  }

  private invalid(field: string, message: string): ApiError {
    return new ApiError(400, "invalid_input", `invalid input in field '${field}'`, {
      fields: [{ name: field, messages: [message] }],
    });
  }

  private makeServer(
    name: string,
    labels: Record<string, string>,
    type: string,
    location: string,
    status: Server["status"],
  ): Server {
    const id = this.id();
    const serverType = SERVER_TYPES.find((t) => t.name === type)!;
    const loc = LOCATIONS.find((l) => l.name === location)!;
    const server: Server = {
      id,
      name,
      status,
      created: new Date().toISOString(),
      labels,
      public_net: {
        ipv4: {
          id: this.id(),
          ip: `203.0.113.${(id % 250) + 1}`,
          blocked: false,
          dns_ptr: defaultPtr(`203.0.113.${(id % 250) + 1}`),
        },
        ipv6: {
          id: this.id(),
          ip: `2001:db8:${(id % 65000).toString(16)}::/64`,
          blocked: false,
          dns_ptr: [],
        },
        firewalls: [],
      },
      server_type: serverType,
      datacenter: { id: loc.id, name: `${loc.name}-dc1`, location: loc },
      image: { id: 114690387, name: "debian-12" },
    };
    this.servers.set(id, server);
    return server;
  }

  private createServer(body: Json): Json {
    const name = body.name;
    if (typeof name !== "string" || !/^[a-zA-Z0-9][a-zA-Z0-9.-]*$/.test(name))
      throw this.invalid("name", "must be a valid hostname");
    if (typeof body.image !== "string") throw this.invalid("image", "is required");
    const type = SERVER_TYPES.find((t) => t.name === body.server_type);
    if (!type) throw this.invalid("server_type", "server type not found");
    const location = (body.location as string | undefined) ?? "fsn1";
    if (!LOCATIONS.some((l) => l.name === location)) throw this.invalid("location", "location not found");
    if (!type.prices.some((p) => p.location === location))
      throw new ApiError(
        422,
        "invalid_input",
        `server type ${type.name} is not available in location ${location}`,
      );
    if ([...this.servers.values()].some((s) => s.name === name))
      throw new ApiError(409, "uniqueness_error", "server name is already used", {
        fields: [{ name: "name", messages: ["is already used"] }],
      });
    if (this.opts.serverLimit !== undefined && this.servers.size >= this.opts.serverLimit)
      throw new ApiError(403, "resource_limit_exceeded", "server limit exceeded");
    for (const k of (body.ssh_keys as (string | number)[] | undefined) ?? [])
      if (!this.sshKeys.some((s) => s.name === k || s.id === k))
        throw this.invalid("ssh_keys", `SSH key ${k} not found`);
    const firewallIds = ((body.firewalls as { firewall: number }[] | undefined) ?? []).map((f) => f.firewall);
    for (const id of firewallIds) this.find(this.firewalls, String(id), "firewall");
    const server = this.makeServer(
      name,
      (body.labels as Record<string, string>) ?? {},
      type.name,
      location,
      "initializing",
    );
    for (const id of firewallIds) this.attach(this.firewalls.get(id)!, server);
    const action = this.startAction("create_server", [{ id: server.id, type: "server" }], () => {
      server.status = "running";
      for (const f of server.public_net.firewalls) f.status = "applied";
    });
    const next = this.startAction("start_server", [{ id: server.id, type: "server" }]);
    return {
      server: structuredClone(server),
      action,
      next_actions: [next],
      root_password: (body.ssh_keys as unknown[] | undefined)?.length ? null : "fake-root-password",
    };
  }

  private deleteServer(server: Server): Action {
    const was = server.status;
    server.status = "deleting";
    return this.startAction(
      "delete_server",
      [{ id: server.id, type: "server" }],
      () => {
        this.servers.delete(server.id);
        for (const fw of this.firewalls.values())
          fw.applied_to = fw.applied_to.filter((r) => !(r.type === "server" && r.server.id === server.id));
      },
      () => {
        server.status = was;
      },
    );
  }

  private attach(fw: Firewall, server: Server): void {
    if (fw.applied_to.some((r) => r.type === "server" && r.server.id === server.id))
      throw new ApiError(422, "firewall_already_applied", "firewall is already applied to the server");
    fw.applied_to.push({ type: "server", server: { id: server.id } });
    // Pending until the action that applies it has finished.
    server.public_net.firewalls.push({ id: fw.id, status: "pending" });
  }

  private applied(fw: Firewall, server: Server): void {
    for (const f of server.public_net.firewalls) if (f.id === fw.id) f.status = "applied";
  }

  private detach(fw: Firewall, server: Server): void {
    fw.applied_to = fw.applied_to.filter((r) => !(r.type === "server" && r.server.id === server.id));
    server.public_net.firewalls = server.public_net.firewalls.filter((f) => f.id !== fw.id);
  }

  private checkRules(rules: unknown): FirewallRule[] {
    if (!Array.isArray(rules)) throw this.invalid("rules", "must be a list");
    return rules.map((r: FirewallRule, i) => {
      if (r.direction !== "in" && r.direction !== "out")
        throw this.invalid(`rules[${i}].direction`, "must be in or out");
      if (!["tcp", "udp", "icmp", "esp", "gre"].includes(r.protocol))
        throw this.invalid(`rules[${i}].protocol`, "invalid protocol");
      const ported = r.protocol === "tcp" || r.protocol === "udp";
      if (ported !== (typeof r.port === "string" && /^\d+(-\d+)?$/.test(r.port)))
        throw this.invalid(`rules[${i}].port`, "invalid port");
      const ips = r.direction === "in" ? r.source_ips : r.destination_ips;
      if (!Array.isArray(ips) || !ips.length || !ips.every((ip) => /^[0-9a-fA-F.:]+\/\d+$/.test(ip)))
        throw this.invalid(
          `rules[${i}].${r.direction === "in" ? "source_ips" : "destination_ips"}`,
          "must be CIDRs",
        );
      return {
        direction: r.direction,
        protocol: r.protocol,
        port: r.port ?? null,
        source_ips: r.source_ips ?? [],
        destination_ips: r.destination_ips ?? [],
        description: r.description ?? null,
      };
    });
  }

  private createFirewall(body: Json): Json {
    const name = body.name;
    if (typeof name !== "string" || !name) throw this.invalid("name", "is required");
    if ([...this.firewalls.values()].some((f) => f.name === name))
      throw new ApiError(409, "uniqueness_error", "firewall name is already used", {
        fields: [{ name: "name", messages: ["is already used"] }],
      });
    const fw: Firewall = {
      id: this.id(),
      name,
      labels: (body.labels as Record<string, string>) ?? {},
      created: new Date().toISOString(),
      rules: this.checkRules(body.rules ?? []),
      applied_to: [],
    };
    const targets = this.servers_of((body.apply_to as FirewallResource[] | undefined) ?? []);
    this.firewalls.set(fw.id, fw);
    for (const s of targets) this.attach(fw, s);
    const actions = targets.map((s) =>
      this.startAction(
        "apply_firewall",
        [
          { id: fw.id, type: "firewall" },
          { id: s.id, type: "server" },
        ],
        () => this.applied(fw, s),
      ),
    );
    return { firewall: structuredClone(fw), actions };
  }

  private servers_of(resources: FirewallResource[]): Server[] {
    return resources.map((r) => {
      if (r.type !== "server")
        throw this.invalid("apply_to", "only server resources are supported by this fake");
      const s = this.servers.get(r.server.id);
      if (!s) throw new ApiError(404, "firewall_resource_not_found", `server ${r.server.id} not found`);
      return s;
    });
  }

  private firewallAction(fw: Firewall, action: string, body: Json): Action[] {
    const res = [{ id: fw.id, type: "firewall" }];
    if (action === "set_rules") {
      fw.rules = this.checkRules(body.rules);
      return [this.startAction("set_firewall_rules", res)];
    }
    const apply = action === "apply_to_resources";
    const servers = this.servers_of(
      ((apply ? body.apply_to : body.remove_from) as FirewallResource[] | undefined) ?? [],
    );
    for (const s of servers) (apply ? this.attach : this.detach).call(this, fw, s);
    return servers.map((s) =>
      this.startAction(
        apply ? "apply_firewall" : "remove_firewall",
        [...res, { id: s.id, type: "server" }],
        apply ? () => this.applied(fw, s) : undefined,
      ),
    );
  }

  /** POST /servers/{id}/actions/change_dns_ptr: {ip, dns_ptr}; null resets Hetzner's default name. */
  private changeDnsPtr(server: Server, body: Json): Action {
    const ip = body.ip;
    const ptr = body.dns_ptr;
    if (typeof ip !== "string") throw this.invalid("ip", "is required");
    if (ptr !== null && (typeof ptr !== "string" || !/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(ptr)))
      throw this.invalid("dns_ptr", "must be a valid hostname or null");
    const v4 = server.public_net.ipv4;
    const v6 = server.public_net.ipv6;
    const inV6 = v6 && ip.startsWith(v6.ip.split("::")[0]);
    if (v4?.ip !== ip && !inV6)
      throw new ApiError(422, "invalid_input", `IP ${ip} does not belong to server ${server.id}`);
    return this.startAction("change_dns_ptr", [{ id: server.id, type: "server" }], () => {
      if (v4?.ip === ip) v4.dns_ptr = ptr ?? defaultPtr(ip);
      else if (v6) {
        v6.dns_ptr = v6.dns_ptr.filter((e) => e.ip !== ip);
        if (ptr) v6.dns_ptr.push({ ip, dns_ptr: ptr });
      }
    });
  }

  private pricing(): Json {
    const monthly = (net: number) => ({ net: net.toFixed(10), gross: (net * 1.19).toFixed(10) });
    const hourly = (net: number) => ({
      net: (net / 730).toFixed(10),
      gross: ((net / 730) * 1.19).toFixed(10),
    });
    return {
      currency: "EUR",
      vat_rate: "19.00",
      primary_ips: [
        {
          type: "ipv4",
          prices: LOCATIONS.map((l) => ({
            location: l.name,
            price_hourly: hourly(PRIMARY_IPV4_NET),
            price_monthly: monthly(PRIMARY_IPV4_NET),
          })),
        },
        {
          type: "ipv6",
          prices: LOCATIONS.map((l) => ({
            location: l.name,
            price_hourly: hourly(0),
            price_monthly: monthly(0),
          })),
        },
      ],
      server_types: SERVER_TYPES.map((t) => ({ id: t.id, name: t.name, prices: t.prices })),
    };
  }
}

/** Hetzner's default reverse DNS name of a server's IPv4 address. */
function defaultPtr(ip: string): string {
  return `static.${ip.split(".").reverse().join(".")}.clients.your-server.de`;
}

export function startFakeHetzner(opts: FakeOptions = {}): Promise<FakeHetzner> {
  return new FakeHetzner(opts).start();
}
