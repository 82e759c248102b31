// Starts the real Portcullis server for one test, in demo mode, in a fresh temporary
// directory (so every test has its own database, secrets and outbox), and stops it again.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const STARTUP_TIMEOUT_MS = 20_000;
const SHUTDOWN_TIMEOUT_MS = 10_000;
const RUNNING_LINE = /^Portcullis is running at (http:\/\/localhost:\d+)\/\s*$/;

function serverBinary() {
  const bin = process.env.PORTCULLIS_BIN ?? path.join(repoRoot, 'target', 'debug', 'portcullis');
  if (!existsSync(bin)) {
    throw new Error(`no server binary at ${bin}: run scripts/e2e, or cargo build -p portcullis`);
  }
  return bin;
}

/** The environment for the server: ours, less any PORTCULLIS_* setting that could point it at
 * a shared database or secrets, plus cheap password hashing (tests only). */
function serverEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('PORTCULLIS_')) env[k] = v;
  }
  // Every server its own management port (tests run servers side by side).
  env.PORTCULLIS_MANAGEMENT_LISTEN = '127.0.0.1:0';
  env.PORTCULLIS_HASHING_MEMORY_KIB = '64';
  env.PORTCULLIS_HASHING_ITERATIONS = '1';
  // Passkeys need a host name (browsers refuse IP addresses as relying parties); any port
  // of localhost is accepted.
  env.PORTCULLIS_PUBLIC_URL = 'http://localhost:8080';
  return env;
}

/**
 * Starts `portcullis serve --demo --listen 127.0.0.1:0` and resolves once it printed its
 * address. The result has `url` (no trailing slash), `origin`, `logs()` (its stderr, JSON
 * lines) and `stop()`, which sends SIGTERM and resolves to `{ code, signal }`.
 */
export async function startServer() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-e2e-'));
  const child = spawn(serverBinary(), ['serve', '--demo', '--listen', '127.0.0.1:0'], {
    cwd: dir,
    env: serverEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr = [];
  let stderrBytes = 0;
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    // Keep the last ~1 MiB of logs for failure messages; a test is short.
    stderr.push(chunk);
    stderrBytes += chunk.length;
    while (stderrBytes > 1 << 20 && stderr.length > 1) stderrBytes -= stderr.shift().length;
  });
  const exited = once(child, 'exit').then(([code, signal]) => ({ code, signal }));

  const lines = createInterface({ input: child.stdout });
  let url;
  try {
    url = await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the server printed no address within ${STARTUP_TIMEOUT_MS} ms`)),
        STARTUP_TIMEOUT_MS,
      );
      lines.once('line', (line) => {
        clearTimeout(timer);
        const m = RUNNING_LINE.exec(line);
        if (m) resolve(m[1]);
        else reject(new Error(`unexpected first line from the server: ${JSON.stringify(line)}`));
      });
      exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`the server exited before it was ready (code ${code}, signal ${signal})`));
      });
    });
  } catch (e) {
    child.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
    throw new Error(`${e.message}\n--- server stderr ---\n${stderr.join('')}`);
  }
  // Keep draining stdout (the demo banner) so the pipe never fills.
  lines.on('line', () => {});

  let stopped;
  return {
    url,
    origin: new URL(url).origin,
    dir,
    logs: () => stderr.join(''),
    /** SIGTERM, then SIGKILL if it has not exited in time; removes the data directory. */
    stop() {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), SHUTDOWN_TIMEOUT_MS);
        const result = await exited;
        clearTimeout(timer);
        await rm(dir, { recursive: true, force: true });
        return result;
      })();
      return stopped;
    },
  };
}
