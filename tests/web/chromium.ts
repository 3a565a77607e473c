/**
 * Debian's headless Chromium, driven over the DevTools protocol (a WebSocket; no browser
 * download, no npm package): open a page, evaluate in it, collect its console errors, take a
 * screenshot. WebGPU is offered (SwiftShader, a software adapter) with `--enable-unsafe-webgpu`.
 */

/** The Chromium command, or undefined when there is none (the one the run report uses). */
export { findChromium } from "../../src/reporting/report.ts";

type Message = {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
};

/** A browser process and its DevTools connection. */
export class Chromium {
  #process: Deno.ChildProcess;
  #socket: WebSocket;
  #profile: string;
  #next = 1;
  #waiting = new Map<number, { resolve: (m: Message) => void; reject: (e: Error) => void }>();
  #listeners: ((m: Message) => void)[] = [];

  private constructor(process: Deno.ChildProcess, socket: WebSocket, profile: string) {
    this.#process = process;
    this.#socket = socket;
    this.#profile = profile;
    socket.onmessage = (e) => {
      const message = JSON.parse(e.data) as Message;
      if (message.id !== undefined) {
        const waiting = this.#waiting.get(message.id);
        this.#waiting.delete(message.id);
        if (message.error) waiting?.reject(new Error(message.error.message));
        else waiting?.resolve(message);
      } else for (const listen of this.#listeners) listen(message);
    };
  }

  /**
   * Starts headless Chromium (with WebGPU offered unless `webgpu` is false, and `args` added to
   * its command line, e.g. the fake camera's `--use-fake-device-for-media-stream`) and connects.
   */
  static async launch(
    binary: string,
    options: { webgpu?: boolean; args?: string[] } = {},
  ): Promise<Chromium> {
    const profile = await Deno.makeTempDir({ prefix: "vit-lora-chromium-" });
    const process = new Deno.Command(binary, {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        ...(options.webgpu === false ? [] : ["--enable-unsafe-webgpu"]),
        ...(options.args ?? []),
        `--user-data-dir=${profile}`,
        "--remote-debugging-port=0",
        "--window-size=1280,1200",
        "about:blank",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    let active: string | undefined;
    for (let i = 0; i < 200 && !active; i++) {
      await new Promise((r) => setTimeout(r, 100));
      active = await Deno.readTextFile(`${profile}/DevToolsActivePort`).catch(() => undefined);
      if (active && active.split("\n").length < 2) active = undefined;
    }
    if (!active) {
      process.kill();
      await process.status;
      throw new Error("Chromium did not start (no DevToolsActivePort)");
    }
    const [port, path] = active.trim().split("\n");
    const socket = new WebSocket(`ws://127.0.0.1:${port}${path}`);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error("cannot connect to Chromium's DevTools"));
    });
    return new Chromium(process, socket, profile);
  }

  /** Sends a DevTools command (to a page's session when given). */
  send(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
  ): Promise<Message> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      this.#socket.send(JSON.stringify({ id, method, params, sessionId }));
    });
  }

  /** Opens `url` in a new page and waits for it to load. */
  async open(url: string): Promise<Page> {
    const { result } = await this.send("Target.createTarget", { url: "about:blank" });
    const { result: attached } = await this.send("Target.attachToTarget", {
      targetId: result!.targetId,
      flatten: true,
    });
    const page = new Page(this, attached!.sessionId as string);
    this.#listeners.push((m) => {
      if (m.sessionId === page.sessionId) page.event(m);
    });
    await this.send("Runtime.enable", {}, page.sessionId);
    await this.send("Log.enable", {}, page.sessionId);
    await this.send("Page.enable", {}, page.sessionId);
    const loaded = page.waitFor("Page.loadEventFired");
    await this.send("Page.navigate", { url }, page.sessionId);
    await loaded;
    return page;
  }

  /** Closes the browser and removes its profile. */
  async close(): Promise<void> {
    try {
      this.#socket.close();
    } catch {
      // closed already
    }
    try {
      this.#process.kill();
    } catch {
      // exited already
    }
    await this.#process.status;
    await Deno.remove(this.#profile, { recursive: true }).catch(() => {});
  }
}

/** One page (tab). */
export class Page {
  readonly browser: Chromium;
  readonly sessionId: string;
  /** Console errors, uncaught exceptions and error log entries, in order. */
  readonly errors: string[] = [];
  /** Every console message, as `type: text`. */
  readonly console: string[] = [];
  #waiters: { method: string; resolve: (m: Message) => void }[] = [];

  constructor(browser: Chromium, sessionId: string) {
    this.browser = browser;
    this.sessionId = sessionId;
  }

  /** A DevTools event of this page. */
  event(m: Message): void {
    const p = m.params ?? {};
    if (m.method === "Runtime.consoleAPICalled") {
      const text = ((p.args ?? []) as { value?: unknown; description?: string }[])
        .map((a) => a.value ?? a.description ?? "").join(" ");
      this.console.push(`${p.type}: ${text}`);
      if (p.type === "error") this.errors.push(text);
    } else if (m.method === "Runtime.exceptionThrown") {
      const d = p.exceptionDetails as { text?: string; exception?: { description?: string } };
      this.errors.push(d.exception?.description ?? d.text ?? "exception");
    } else if (m.method === "Log.entryAdded") {
      const e = p.entry as { level: string; text: string; url?: string };
      if (e.level === "error") this.errors.push(`${e.text}${e.url ? ` (${e.url})` : ""}`);
    }
    this.#waiters = this.#waiters.filter((w) => {
      if (w.method !== m.method) return true;
      w.resolve(m);
      return false;
    });
  }

  /** The next event named `method`. */
  waitFor(method: string): Promise<Message> {
    return new Promise((resolve) => this.#waiters.push({ method, resolve }));
  }

  /**
   * Evaluates `expression` in the page (awaiting a promise) and returns its value, which
   * must be JSON-serialisable; an exception in the page is an error here.
   */
  async evaluate<T>(expression: string): Promise<T> {
    const { result } = await this.browser.send("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    }, this.sessionId);
    const details = result!.exceptionDetails as
      | { text?: string; exception?: { description?: string } }
      | undefined;
    if (details) {
      throw new Error(`in the page: ${details.exception?.description ?? details.text}`);
    }
    return (result!.result as { value: T }).value;
  }

  /** A PNG of the whole page. */
  async screenshot(): Promise<Uint8Array> {
    const { result } = await this.browser.send("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
    }, this.sessionId);
    const b64 = result!.data as string;
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  }
}
