// Real servers for the client's tests: redis-server, a PostgreSQL cluster and the warden binary
// under test, on free ports in temporary directories, stopped when the test file ends. With
// CI set, a missing server fails the run; nothing is mocked.

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, existsSync, rmSync, cpSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(fileURLToPath(new URL("../../..", import.meta.url)));
export const wardenBin = process.env.WARDEN_BIN ?? join(root, "target", "debug", "warden");
const isRoot = process.getuid?.() === 0;
const cleanups = [];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs every cleanup (servers stop), newest first. */
export async function stopAll() {
  while (cleanups.length) {
    try {
      await cleanups.pop()();
    } catch {
      // keep stopping the others
    }
  }
}
process.on("exit", () => {
  for (const c of cleanups.reverse()) {
    try {
      c(true);
    } catch {
      // exiting anyway
    }
  }
});

/** A TCP port nobody listens on now. */
export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

function which(bin) {
  try {
    return execFileSync("sh", ["-c", `command -v ${bin}`]).toString().trim();
  } catch {
    throw new Error(`${bin} not found: scripts/test.sh installs it`);
  }
}

async function until(what, limitMs, ok) {
  const deadline = Date.now() + limitMs;
  for (;;) {
    if (await ok().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** A throwaway redis-server. */
export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "warden-ts-redis-"));
  const child = spawn(which("redis-server"), ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], {
    stdio: "ignore",
  });
  cleanups.push(() => {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  await until("redis", 10_000, async () => {
    const out = execFileSync(which("redis-cli"), ["-p", String(port), "PING"]).toString();
    return out.includes("PONG");
  });
  return { port, url: `redis://127.0.0.1:${port}/`, child };
}

function pgBin(name) {
  const base = "/usr/lib/postgresql";
  if (!existsSync(base)) throw new Error("PostgreSQL not installed: scripts/test.sh installs it");
  const v = readdirSync(base).sort((a, b) => Number(a) - Number(b)).pop();
  return join(base, v, "bin", name);
}

function asPostgres(bin, args) {
  return isRoot ? ["runuser", ["-u", "postgres", "--", bin, ...args]] : [bin, args];
}

function runPg(bin, args) {
  const [cmd, argv] = asPostgres(bin, args);
  execFileSync(cmd, argv, { stdio: "ignore" });
}

/** A throwaway PostgreSQL cluster (a copy of the Rust suite's initdb template when there is
 * one, else a fresh initdb). */
export async function startPostgres() {
  const dir = mkdtempSync(join(tmpdir(), "warden-ts-pg-"));
  const data = join(dir, "data");
  if (isRoot) execFileSync("chown", ["postgres", dir]);
  const templates = join(root, "target", "tmp", "pg-template");
  const version = pgBin("initdb").split("/").at(-3);
  if (existsSync(join(templates, version, "PG_VERSION"))) {
    cpSync(join(templates, version), data, { recursive: true });
    if (isRoot) execFileSync("chown", ["-R", "postgres", data]);
    execFileSync("chmod", ["700", data]);
  } else {
    runPg(pgBin("initdb"), ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]);
  }
  const port = await freePort();
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  runPg(pgBin("pg_ctl"), ["-D", data, "-o", opts, "-w", "-t", "60", "-l", join(dir, "log"), "start"]);
  cleanups.push(() => {
    try {
      runPg(pgBin("pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  return { port, url: `postgres://postgres@127.0.0.1:${port}/postgres` };
}

/** The warden binary serving on PostgreSQL `pg` and Redis `redis` (if given), once
 * `/readyz` answers 200. `env` adds settings. */
export async function startWarden({ pg, redis, env = {} } = {}) {
  if (!existsSync(wardenBin)) throw new Error(`${wardenBin} not found: cargo build first (scripts/test.sh does)`);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "warden-ts-w-"));
  const child = spawn(wardenBin, ["serve"], {
    env: {
      PATH: process.env.PATH,
      WARDEN_LISTEN: `127.0.0.1:${port}`,
      WARDEN_CONFIG: join(dir, "none.toml"),
      WARDEN_DATABASE_URL: pg ? pg.url : `sqlite://${dir}/w.db`,
      ...(redis ? { WARDEN_REDIS_URL: redis.url } : {}),
      // These suites run beside the Rust suite on two cores: the 50 ms default would trip the
      // breaker there (a safe block the test is not about).
      WARDEN_REDIS_TIMEOUT_MS: "2000",
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const stop = () => {
    child.kill("SIGCONT");
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  cleanups.push(stop);
  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await until("warden /readyz", 20_000, async () => (await fetch(`${baseUrl}/readyz`)).status === 200);
  } catch (e) {
    throw new Error(`${e.message}; warden said: ${stderr}`);
  }
  return {
    baseUrl,
    child,
    /** SIGSTOP (true) or SIGCONT (false): the process keeps its sockets and answers nothing. */
    stall: (on) => child.kill(on ? "SIGSTOP" : "SIGCONT"),
    /** `warden token create`: the secret. */
    token: (name, tenant, scopes) =>
      execFileSync(wardenBin, ["token", "create", "--name", name, "--tenant", tenant, "--scopes", scopes], {
        env: { PATH: process.env.PATH, WARDEN_DATABASE_URL: pg ? pg.url : `sqlite://${dir}/w.db`, WARDEN_CONFIG: join(dir, "none.toml") },
      })
        .toString()
        .split("\n")[0]
        .trim(),
  };
}

/** A fetch that records every request (method and path) it sends. */
export function recordingFetch() {
  const sent = [];
  const f = (url, init) => {
    sent.push(`${init?.method ?? "GET"} ${new URL(url).pathname}`);
    return fetch(url, init);
  };
  return { fetch: f, sent };
}
