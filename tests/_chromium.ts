/**
 * Headless Chromium for tests, driven over the DevTools protocol (Deno's WebSocket): open a page,
 * collect console errors and exceptions, evaluate expressions, take a screenshot. Every step is
 * time-limited; the browser process is killed on close.
 */

/** The Chromium executable on PATH, or undefined. */
export async function findChromium(): Promise<string | undefined> {
  for (const name of ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]) {
    try {
      const r = await new Deno.Command("sh", { args: ["-c", `command -v ${name}`], stdout: "piped" })
        .output();
      const path = new TextDecoder().decode(r.stdout).trim();
      if (r.success && path) return path;
    } catch {
      // no shell: no browser either
    }
  }
  return undefined;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let id: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((
    _,
    rej,
  ) => (id = setTimeout(() => rej(new Error(`${what}: timed out after ${ms} ms`)), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(id));
}

/** What a page load gave: console errors and exceptions, and a session to query it. */
export interface PageRun {
  errors: string[];
  evaluate<T>(expression: string): Promise<T>;
  screenshot(): Promise<Uint8Array>;
}

/** A running browser. */
export class Browser {
  private nextId = 1;
  private pending = new Map<number, { res: (v: unknown) => void; rej: (e: Error) => void }>();
  private listeners: Array<
    (m: { method: string; params: Record<string, unknown>; sessionId?: string }) => void
  > = [];

  private constructor(private proc: Deno.ChildProcess, private ws: WebSocket, private profile: string) {
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data as string);
      if (m.id !== undefined) {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.error) p?.rej(new Error(`${m.error.message} (${m.error.code})`));
        else p?.res(m.result);
      } else for (const l of this.listeners) l(m);
    };
  }

  /**
   * Starts `exe` headless and connects to it. With `webgpu`, pages get WebGPU (on this machine
   * SwiftShader, Chromium's software Vulkan: `--enable-unsafe-webgpu --enable-features=Vulkan`) instead
   * of the default `--disable-gpu`.
   */
  static async launch(exe: string, timeoutMs = 30000, opts: { webgpu?: boolean } = {}): Promise<Browser> {
    const profile = await Deno.makeTempDir({ prefix: "engram_chromium_" });
    const proc = new Deno.Command(exe, {
      args: [
        "--headless=new",
        "--no-sandbox",
        ...(opts.webgpu ? ["--enable-unsafe-webgpu", "--enable-features=Vulkan"] : ["--disable-gpu"]),
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        `--user-data-dir=${profile}`,
        "--remote-debugging-port=0",
        "about:blank",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    try {
      const url = await withTimeout(
        (async () => {
          let text = "";
          const reader = proc.stderr.pipeThrough(new TextDecoderStream()).getReader();
          while (true) {
            const { value, done } = await reader.read();
            if (done) throw new Error(`chromium exited before DevTools started: ${text.slice(-500)}`);
            text += value;
            const m = /DevTools listening on (ws:\/\/\S+)/.exec(text);
            if (m) {
              // Keep draining stderr so the browser never blocks on a full pipe.
              (async () => {
                while (!(await reader.read().catch(() => ({ done: true }))).done) { /* drain */ }
              })();
              return m[1];
            }
          }
        })(),
        timeoutMs,
        "chromium start",
      );
      const ws = new WebSocket(url);
      await withTimeout(
        new Promise<void>((res, rej) => {
          ws.onopen = () => res();
          ws.onerror = () => rej(new Error("DevTools WebSocket failed"));
        }),
        timeoutMs,
        "DevTools connect",
      );
      return new Browser(proc, ws, profile);
    } catch (e) {
      try {
        proc.kill("SIGKILL");
      } catch { /* gone */ }
      await proc.status;
      await Deno.remove(profile, { recursive: true }).catch(() => {});
      throw e;
    }
  }

  private send(method: string, params: Record<string, unknown> = {}, sessionId?: string, ms = 20000) {
    const id = this.nextId++;
    const p = new Promise<unknown>((res, rej) => this.pending.set(id, { res, rej }));
    this.ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    return withTimeout(p, ms, method);
  }

  /**
   * Opens `url` in a new page of `width` x `height`, waits for its load event, returns the run; each
   * `evaluate` may take `evaluateMs`.
   */
  async open(url: string, width = 1280, height = 900, evaluateMs = 20000): Promise<PageRun> {
    const { targetId } = await this.send("Target.createTarget", { url: "about:blank" }) as {
      targetId: string;
    };
    const { sessionId } = await this.send("Target.attachToTarget", { targetId, flatten: true }) as {
      sessionId: string;
    };
    const errors: string[] = [];
    let loaded!: () => void;
    const load = new Promise<void>((res) => (loaded = res));
    this.listeners.push((m) => {
      if (m.sessionId !== sessionId) return;
      const p = m.params;
      if (m.method === "Runtime.consoleAPICalled" && (p.type === "error" || p.type === "assert")) {
        errors.push(
          `console.${p.type}: ${
            JSON.stringify((p.args as unknown[]).map((a) => (a as { value?: unknown }).value))
          }`,
        );
      } else if (m.method === "Runtime.exceptionThrown") {
        errors.push(`exception: ${JSON.stringify((p.exceptionDetails as { text?: string }).text)}`);
      } else if (m.method === "Log.entryAdded") {
        const e = p.entry as { level: string; text: string; url?: string };
        if (e.level === "error") errors.push(`log: ${e.text} ${e.url ?? ""}`);
      } else if (m.method === "Page.loadEventFired") loaded();
    });
    for (const d of ["Page.enable", "Runtime.enable", "Log.enable"]) await this.send(d, {}, sessionId);
    await this.send("Emulation.setDeviceMetricsOverride", {
      width,
      height,
      deviceScaleFactor: 1,
      mobile: false,
    }, sessionId);
    await this.send("Page.navigate", { url }, sessionId);
    await withTimeout(load, 20000, `load ${url}`);
    return {
      errors,
      evaluate: async <T>(expression: string) => {
        // A promise is awaited (async checks), any other value returned as is.
        const params = { expression, returnByValue: true, awaitPromise: true };
        const r = await this.send("Runtime.evaluate", params, sessionId, evaluateMs) as {
          result: { value: T };
          exceptionDetails?: { text: string };
        };
        if (r.exceptionDetails) throw new Error(`evaluate: ${r.exceptionDetails.text}`);
        return r.result.value;
      },
      screenshot: async () => {
        const r = await this.send("Page.captureScreenshot", { format: "png" }, sessionId) as { data: string };
        return Uint8Array.from(atob(r.data), (c) => c.charCodeAt(0));
      },
    };
  }

  /** Closes the connection and kills the browser. */
  async close(): Promise<void> {
    try {
      this.ws.close();
    } catch { /* closed */ }
    try {
      this.proc.kill("SIGKILL");
    } catch { /* gone */ }
    await this.proc.status;
    await Deno.remove(this.profile, { recursive: true }).catch(() => {});
  }
}
