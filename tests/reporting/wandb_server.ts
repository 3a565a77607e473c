/**
 * A small imitation of Weights & Biases' endpoints on 127.0.0.1 for the tests: the GraphQL
 * `Viewer` query and `UpsertBucket` mutation, and the run's `file_stream`, recording what
 * arrives (point `WANDB_BASE_URL` at `url`).
 */

import { serveLocal } from "../helpers.ts";

/** The imitation; `await FakeWandb.start()`. */
export class FakeWandb {
  /** Variables of each `UpsertBucket` (the run's creation; `config` is a JSON string). */
  readonly upserts: Record<string, unknown>[] = [];
  /** Every history row streamed, parsed. */
  readonly history: Record<string, unknown>[] = [];
  /** Whether the run was marked complete. */
  complete = false;
  /** The API key seen (from `Authorization: Basic api:<key>`). */
  keys = new Set<string>();
  url = "";
  #server?: Deno.HttpServer;

  /** Starts the server on a free port. */
  static start(): Promise<FakeWandb> {
    const fake = new FakeWandb();
    const { server, url } = serveLocal((req) => fake.#handle(req));
    fake.#server = server;
    fake.url = url;
    return Promise.resolve(fake);
  }

  /** Stops the server. */
  async close(): Promise<void> {
    await this.#server?.shutdown();
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const auth = req.headers.get("Authorization");
    if (auth?.startsWith("Basic ")) this.keys.add(atob(auth.slice(6)).replace(/^api:/, ""));
    const body = await req.json().catch(() => ({}));
    if (url.pathname === "/graphql") {
      const query = String(body.query ?? "");
      if (query.includes("viewer")) {
        return Response.json({
          data: { viewer: { id: "u1", entity: "tester", flags: "{}", teams: { edges: [] } } },
        });
      }
      if (query.includes("upsertBucket")) {
        const v = body.variables ?? {};
        this.upserts.push(v);
        return Response.json({
          data: {
            upsertBucket: {
              bucket: {
                id: "b1",
                name: v.name ?? v.id,
                displayName: v.displayName ?? "",
                description: "",
                config: v.config ?? "{}",
                sweepName: null,
                project: {
                  id: "p1",
                  name: v.project ?? "vit-lora",
                  entity: { id: "e1", name: v.entity || "tester" },
                },
              },
              inserted: true,
            },
          },
        });
      }
      return Response.json({ data: {} });
    }
    if (/^\/files\/[^/]+\/[^/]+\/[^/]+\/file_stream$/.test(url.pathname)) {
      for (const line of body.files?.["wandb-history.jsonl"]?.content ?? []) {
        this.history.push(JSON.parse(line));
      }
      if (body.complete) this.complete = true;
      return Response.json({ exitcode: null, limits: {} });
    }
    return Response.json({ error: `no route ${url.pathname}` }, { status: 404 });
  }
}
