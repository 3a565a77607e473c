/**
 * A small imitation of the Hugging Face Hub on 127.0.0.1 for the tests: the routes the clients
 * really use, with the Hub's headers and errors.
 *
 * - `HEAD|GET /[datasets/]owner/name/resolve/<rev>/<path>`: small files answered directly
 *   (`ETag` = git blob oid), large ones (LFS) by a 302 to the CDN route, carrying
 *   `X-Repo-Commit`, `X-Linked-Etag` (sha256) and `X-Linked-Size`; 401 for a private repo
 *   without the token, 404 with `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`,
 *   `EntryNotFound`).
 * - `GET /cdn/<sha256>`: the bytes, with range requests (206). The redirects point at `cdnUrl`
 *   (default: this server); the real CDN is another host, which `huggingface_hub`'s HEAD does not
 *   follow (it reads the file's metadata off the 302 itself), so a Python client needs `cdnUrl`
 *   set to another host name of this server, e.g. `http://localhost:<port>`.
 * - `GET /api/{models,datasets}/owner/name[/revision/<rev>]`: the repository's info (`sha`,
 *   `siblings`, with `?blobs=true` their sizes and LFS details), as `model_info`/`dataset_info`
 *   and transformers' `resolve_revision` read it.
 * - `GET /api/{models,datasets}/owner/name/tree/<rev>[/<path>]`: the listing, paginated by
 *   `Link: <…>; rel="next"`.
 * - `GET /api/whoami-v2`, `POST /api/repos/create`, `POST /api/…/preupload/<rev>`,
 *   `POST /[datasets/]owner/name.git/info/lfs/objects/batch`, `PUT /lfs-upload/<oid>`,
 *   `POST /api/…/commit/<rev>` (NDJSON): what a push needs.
 *
 * Faults to test against: `cutAfter` breaks a CDN download after so many bytes (once),
 * `corrupt` serves altered bytes for a sha256.
 */

import { serveLocal } from "../helpers.ts";
import { createHash } from "node:crypto";

/** A repository's state. */
export interface FakeRepo {
  type: "model" | "dataset";
  id: string;
  private: boolean;
  /** Commits, newest last: each a full file map. */
  commits: { oid: string; files: Map<string, Uint8Array>; summary: string }[];
  /** Branches and other refs → commit oid. */
  refs: Map<string, string>;
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const gitOid = (b: Uint8Array) =>
  createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");
const isLfs = (path: string, b: Uint8Array) =>
  /\.(safetensors|parquet|bin|png|jpg)$/.test(path) || b.length > 10_000;

/** The imitation; `await FakeHub.start()`, then `url` is its endpoint. */
export class FakeHub {
  readonly repos = new Map<string, FakeRepo>();
  /** Every request: `METHOD /path`. */
  readonly requests: string[] = [];
  /** The token accepted (`Bearer <token>`). */
  token = "hf_test_token";
  /** The user `whoami` names. */
  user = "tester";
  /** Break the next CDN download after this many bytes. */
  cutAfter?: number;
  /** Serve altered bytes for these sha256s. */
  readonly corrupt = new Set<string>();
  /** The Range headers the CDN route was asked for. */
  readonly ranges: string[] = [];
  /** Tree entries a page. */
  pageSize = 2;
  /** LFS objects uploaded. */
  readonly lfs = new Map<string, Uint8Array>();
  url = "";
  /**
   * Where LFS files are redirected to (default: `url`): another name of this server, such as
   * `http://localhost:<port>`, stands for the Hub's CDN host.
   */
  cdnUrl?: string;
  #server?: Deno.HttpServer;
  #started = new Date().toISOString();
  #commitCount = 0;

  /** Starts a server on a free port of 127.0.0.1 (or on `port`). */
  static start(port = 0): Promise<FakeHub> {
    const hub = new FakeHub();
    const { server, url } = serveLocal((req) => hub.#handle(req), port);
    hub.#server = server;
    hub.url = url;
    return Promise.resolve(hub);
  }

  /** Adds (or replaces) a repository with one commit of `files`. */
  addRepo(
    type: "model" | "dataset",
    id: string,
    files: Record<string, Uint8Array | string>,
    options: { private?: boolean; ref?: string } = {},
  ): string {
    const map = new Map(
      Object.entries(files).map((
        [p, c],
      ) => [p, typeof c === "string" ? new TextEncoder().encode(c) : c]),
    );
    const key = `${type}:${id}`;
    const repo: FakeRepo = this.repos.get(key) ??
      { type, id, private: options.private ?? false, commits: [], refs: new Map() };
    const oid = this.#newCommit(repo, map, "initial");
    repo.refs.set(options.ref ?? "main", oid);
    this.repos.set(key, repo);
    return oid;
  }

  /** The files of a ref (default main). */
  files(type: "model" | "dataset", id: string, ref = "main"): Map<string, Uint8Array> | undefined {
    const repo = this.repos.get(`${type}:${id}`);
    const oid = repo?.refs.get(ref);
    return repo?.commits.find((c) => c.oid === oid)?.files;
  }

  /** Stops the server. */
  async close(): Promise<void> {
    await this.#server?.shutdown();
  }

  #newCommit(repo: FakeRepo, files: Map<string, Uint8Array>, summary: string): string {
    const oid = createHash("sha1").update(`${repo.id}:${++this.#commitCount}:${summary}`).digest(
      "hex",
    );
    repo.commits.push({ oid, files, summary });
    return oid;
  }

  #authorized(req: Request): boolean {
    return req.headers.get("Authorization") === `Bearer ${this.token}`;
  }

  #error(status: number, message: string, code?: string): Response {
    return Response.json({ error: message }, {
      status,
      headers: code ? { "X-Error-Code": code } : {},
    });
  }

  /** The repository of a request, or the error answer. */
  #repo(req: Request, type: "model" | "dataset", id: string): FakeRepo | Response {
    const repo = this.repos.get(`${type}:${id}`);
    if (!repo) return this.#error(404, "Repository not found", "RepoNotFound");
    if (repo.private && !this.#authorized(req)) {
      return this.#error(401, "Invalid credentials in Authorization header", "RepoNotFound");
    }
    return repo;
  }

  #commitOf(repo: FakeRepo, rev: string) {
    const oid = repo.refs.get(rev) ?? rev;
    return repo.commits.find((c) => c.oid === oid);
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname;
    this.requests.push(`${req.method} ${path}`);
    let m: RegExpMatchArray | null;

    if ((m = path.match(/^\/cdn\/([0-9a-f]{64})$/))) return this.#cdn(req, m[1]);

    if ((m = path.match(/^\/(datasets\/)?([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/))) {
      const repo = this.#repo(req, m[1] ? "dataset" : "model", m[2]);
      if (repo instanceof Response) return repo;
      const commit = this.#commitOf(repo, decodeURIComponent(m[3]));
      if (!commit) return this.#error(404, "Revision not found", "RevisionNotFound");
      const file = commit.files.get(m[4].split("/").map(decodeURIComponent).join("/"));
      if (!file) return this.#error(404, "Entry not found", "EntryNotFound");
      const headers = new Headers({ "X-Repo-Commit": commit.oid, ETag: `"${gitOid(file)}"` });
      if (isLfs(m[4], file)) {
        const sha = sha256(file);
        headers.set("X-Linked-Etag", `"${sha}"`);
        headers.set("X-Linked-Size", String(file.length));
        headers.set("Location", `${this.cdnUrl ?? this.url}/cdn/${sha}`);
        return new Response(null, { status: 302, headers });
      }
      headers.set("Content-Length", String(file.length));
      return new Response(req.method === "HEAD" ? null : file as Uint8Array<ArrayBuffer>, {
        headers,
      });
    }

    if ((m = path.match(/^\/api\/(models|datasets)\/([^/]+\/[^/]+)\/tree\/([^/]+)(?:\/(.*))?$/))) {
      const repo = this.#repo(req, m[1] === "datasets" ? "dataset" : "model", m[2]);
      if (repo instanceof Response) return repo;
      const commit = this.#commitOf(repo, decodeURIComponent(m[3]));
      if (!commit) return this.#error(404, "Revision not found", "RevisionNotFound");
      const prefix = m[4] ? m[4].replace(/\/$/, "") + "/" : "";
      const recursive = url.searchParams.get("recursive") === "true";
      const entries = [...commit.files.entries()]
        .filter(([p]) =>
          p.startsWith(prefix) && (recursive || !p.slice(prefix.length).includes("/"))
        )
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([p, b]) => ({
          type: "file",
          path: p,
          size: b.length,
          oid: gitOid(b),
          ...(isLfs(p, b) ? { lfs: { oid: sha256(b), size: b.length, pointerSize: 134 } } : {}),
        }));
      const cursor = Number(url.searchParams.get("cursor") ?? 0);
      const page = entries.slice(cursor, cursor + this.pageSize);
      const headers = new Headers();
      if (cursor + this.pageSize < entries.length) {
        const next = new URL(url);
        next.searchParams.set("cursor", String(cursor + this.pageSize));
        headers.set("Link", `<${next.href}>; rel="next"`);
      }
      return Response.json(page, { headers });
    }

    if (
      (m = path.match(/^\/api\/(models|datasets)\/([^/]+\/[^/]+?)(?:\/revision\/([^/]+))?$/)) &&
      (req.method === "GET" || req.method === "HEAD")
    ) {
      return this.#info(req, m[1] === "datasets" ? "dataset" : "model", m[2], m[3], url);
    }

    // what a push needs: a token for all of it
    // (the LFS upload URL stands for a pre-signed storage URL: no token, a signature instead)
    if (path.startsWith("/api/") || path.includes(".git/")) {
      if (!this.#authorized(req)) {
        return this.#error(401, "Invalid credentials in Authorization header");
      }
    }
    if (path === "/api/whoami-v2") {
      return Response.json({
        type: "user",
        name: this.user,
        auth: { type: "access_token", accessToken: { displayName: "test", role: "write" } },
      });
    }

    if (path === "/api/repos/create" && req.method === "POST") {
      const body = await req.json();
      const type = body.type === "dataset" ? "dataset" : "model";
      const id = `${body.organization ?? this.user}/${body.name}`;
      if (this.repos.has(`${type}:${id}`)) {
        return this.#error(409, "You already created this model repo");
      }
      const repo: FakeRepo = {
        type,
        id,
        private: body.private === true || body.visibility === "private",
        commits: [],
        refs: new Map(),
      };
      repo.refs.set("main", this.#newCommit(repo, new Map(), "initial commit"));
      this.repos.set(`${type}:${id}`, repo);
      return Response.json({
        url: `${this.url}/${type === "dataset" ? "datasets/" : ""}${id}`,
        name: id,
      });
    }

    if ((m = path.match(/^\/api\/(models|datasets)\/([^/]+\/[^/]+)\/preupload\/([^/]+)$/))) {
      const body = await req.json();
      return Response.json({
        files: body.files.map((f: { path: string; size: number }) => ({
          path: f.path,
          uploadMode: /\.(safetensors|bin|parquet)$/.test(f.path) || f.size > 10_000
            ? "lfs"
            : "regular",
          shouldIgnore: false,
        })),
      });
    }

    if ((m = path.match(/^\/(datasets\/)?([^/]+\/[^/]+)\.git\/info\/lfs\/objects\/batch$/))) {
      const body = await req.json();
      return Response.json({
        transfer: "basic",
        objects: body.objects.map((o: { oid: string; size: number }) => ({
          oid: o.oid,
          size: o.size,
          ...(this.lfs.has(o.oid) ? {} : {
            actions: {
              upload: { href: `${this.url}/lfs-upload/${o.oid}?signature=test`, header: {} },
            },
          }),
        })),
      }, { headers: { "Content-Type": "application/vnd.git-lfs+json" } });
    }

    if ((m = path.match(/^\/lfs-upload\/([0-9a-f]{64})$/)) && req.method === "PUT") {
      const bytes = new Uint8Array(await req.arrayBuffer());
      if (sha256(bytes) !== m[1]) return this.#error(400, "sha256 mismatch");
      this.lfs.set(m[1], bytes);
      return new Response(null, { status: 200 });
    }

    if ((m = path.match(/^\/api\/(models|datasets)\/([^/]+\/[^/]+)\/commit\/([^/]+)$/))) {
      const repo = this.#repo(req, m[1] === "datasets" ? "dataset" : "model", m[2]);
      if (repo instanceof Response) return repo;
      const branch = decodeURIComponent(m[3]);
      const parent = this.#commitOf(repo, branch);
      const files = new Map(parent?.files ?? []);
      let summary = "";
      for (const line of (await req.text()).split("\n").filter(Boolean)) {
        const { key, value } = JSON.parse(line);
        if (key === "header") summary = value.summary;
        else if (key === "file") {
          files.set(value.path, Uint8Array.from(atob(value.content), (c) => c.charCodeAt(0)));
        } else if (key === "lfsFile") {
          const bytes = this.lfs.get(value.oid);
          if (!bytes) return this.#error(400, `LFS object ${value.oid} was not uploaded`);
          files.set(value.path, bytes);
        } else if (key === "deletedFile") files.delete(value.path);
      }
      const oid = this.#newCommit(repo, files, summary);
      repo.refs.set(branch, oid);
      return Response.json({ commitOid: oid, commitUrl: `${this.url}/${repo.id}/commit/${oid}` });
    }

    return this.#error(404, `no route for ${req.method} ${path}`);
  }

  /** `GET /api/{models,datasets}/<id>[/revision/<rev>]`: what `model_info` reads. */
  #info(
    req: Request,
    type: "model" | "dataset",
    id: string,
    rev: string | undefined,
    url: URL,
  ): Response {
    const repo = this.#repo(req, type, id);
    if (repo instanceof Response) return repo;
    const commit = this.#commitOf(repo, decodeURIComponent(rev ?? "main"));
    if (!commit) {
      return this.#error(404, `Invalid rev id: ${rev}`, "RevisionNotFound");
    }
    const blobs = url.searchParams.get("blobs") === "true";
    const siblings = [...commit.files.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([p, b]) => ({
        rfilename: p,
        ...(blobs
          ? {
            blobId: gitOid(b),
            size: b.length,
            ...(isLfs(p, b)
              ? { lfs: { sha256: sha256(b), size: b.length, pointerSize: 134 } }
              : {}),
          }
          : {}),
      }));
    const owner = id.split("/")[0];
    return Response.json({
      _id: createHash("sha1").update(`${type}:${id}`).digest("hex").slice(0, 24),
      id,
      ...(type === "model" ? { modelId: id } : {}),
      author: owner,
      sha: commit.oid,
      lastModified: this.#started,
      createdAt: this.#started,
      private: repo.private,
      gated: false,
      disabled: false,
      downloads: 0,
      likes: 0,
      tags: [],
      siblings,
    });
  }

  #cdn(req: Request, sha: string): Response {
    let bytes: Uint8Array | undefined;
    for (const repo of this.repos.values()) {
      for (const c of repo.commits) {
        for (const b of c.files.values()) if (!bytes && sha256(b) === sha) bytes = b;
      }
    }
    if (!bytes) return new Response("no such object", { status: 404 });
    if (this.corrupt.has(sha)) {
      bytes = bytes.slice();
      bytes[bytes.length >> 1] ^= 0xff;
    }
    let start = 0;
    if (req.headers.get("Range")) this.ranges.push(req.headers.get("Range")!);
    const range = req.headers.get("Range")?.match(/^bytes=(\d+)-$/);
    const headers = new Headers({ "Accept-Ranges": "bytes", ETag: `"${sha}"` });
    let status = 200;
    if (range) {
      start = Number(range[1]);
      if (start >= bytes.length) return new Response(null, { status: 416 });
      status = 206;
      headers.set("Content-Range", `bytes ${start}-${bytes.length - 1}/${bytes.length}`);
    }
    const body = bytes.subarray(start);
    headers.set("Content-Length", String(body.length));
    if (req.method === "HEAD") return new Response(null, { status, headers });
    const cut = this.cutAfter;
    if (cut !== undefined && cut < body.length) {
      this.cutAfter = undefined;
      // send `cut` bytes, then break the connection
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(body.slice(0, cut));
          setTimeout(() => controller.error(new Error("connection reset")), 20);
        },
      });
      return new Response(stream, { status, headers });
    }
    return new Response(body as Uint8Array<ArrayBuffer>, { status, headers });
  }
}
