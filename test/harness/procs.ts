// Process bookkeeping shared by the control-plane and node harnesses: start a daemon in its
// own process group with its output in a log file, wait for an HTTP(S) readiness probe,
// stop it (SIGTERM, then SIGKILL after a grace period), and find free loopback ports.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';

export interface Proc {
  name: string;
  child: ChildProcess;
  logFile: string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>;
  exited: boolean;
}

export interface LaunchOptions {
  /** Start attempt (1, 2, …): each gets its own log, so a retry's failure is never read from an earlier log. */
  attempt?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Minimal environment for a daemon: PATH, and HOME/TMPDIR in its directory. */
function daemonEnv(dir: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, TMPDIR: dir };
}

/** Spawns `bin args` detached (its own process group) with stdout and stderr in `<dir>/<name>.log`. */
export function launch(dir: string, name: string, bin: string, args: string[], o: LaunchOptions = {}): Proc {
  const attempt = o.attempt ?? 1;
  const logFile = join(dir, attempt === 1 ? `${name}.log` : `${name}.attempt${attempt}.log`);
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(bin, args, { cwd: o.cwd ?? dir, detached: true, stdio: ['ignore', fd, fd], env: o.env ?? daemonEnv(dir) });
  } finally {
    closeSync(fd);
  }
  const proc: Proc = {
    name,
    child,
    logFile,
    exited: false,
    exit: new Promise((resolve) => {
      child.once('error', (error) => {
        proc.exited = true;
        resolve({ code: null, signal: null, error });
      });
      child.once('exit', (code, signal) => {
        proc.exited = true;
        resolve({ code, signal });
      });
    }),
  };
  child.unref();
  return proc;
}

export function killGroupSync(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

/** SIGTERM to the process group, SIGKILL after `graceMs`; resolves once it has exited. */
export async function stopProc(p: Proc, graceMs: number): Promise<void> {
  if (p.exited) return;
  killGroupSync(p.child.pid, 'SIGTERM');
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs));
  if ((await Promise.race([p.exit, timer])) === 'timeout') {
    killGroupSync(p.child.pid, 'SIGKILL');
    await p.exit;
  }
}

export function logTail(p: Proc, lines = 15): string {
  let text: string;
  try {
    text = readFileSync(p.logFile, 'utf8');
  } catch {
    return '    (no output)';
  }
  const out = text.trimEnd().split('\n').slice(-lines);
  return out.length && out[0] !== '' ? out.map((l) => `    ${l}`).join('\n') : '    (no output)';
}

function portClash(p: Proc): boolean {
  try {
    return /address already in use/i.test(readFileSync(p.logFile, 'utf8'));
  } catch {
    return false;
  }
}

export class PortClash extends Error {}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export type Probe = { status: number; body: string } | { error: string };

/** GET `url` (HTTPS when `tls` is given, else HTTP); never rejects. */
export function get(url: string, tls?: { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean }): Promise<Probe> {
  return new Promise((resolve) => {
    const opts = { timeout: 2000, ...(tls ?? {}) };
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, opts, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ error: e.message }));
    req.end();
  });
}

/**
 * Polls `probe` until it returns 200, the process exits (an Error with its last log
 * lines; a PortClash when its log says the address was in use), or the deadline passes.
 */
export async function waitReady(p: Proc, what: string, timeoutMs: number, probe: () => Promise<Probe>, cmd: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: Probe;
  for (;;) {
    if (p.exited) {
      const ex = await p.exit;
      if (portClash(p)) throw new PortClash(`${p.name}: address already in use`);
      const how = ex.error ? `could not be started (${ex.error.message})` : `exited (code ${ex.code}, signal ${ex.signal}) before ${what}`;
      throw new Error(`${p.name} ${how}. Command: ${cmd}\n  last output (${p.logFile}):\n${logTail(p)}`);
    }
    last = await probe();
    if ('status' in last && last.status === 200) return;
    if (Date.now() > deadline) {
      const detail = 'status' in last ? `HTTP ${last.status}: ${last.body.slice(0, 2000)}` : last.error;
      throw new Error(`${p.name} did not become ready (${what}) within ${timeoutMs} ms; last probe: ${detail}\n  last output (${p.logFile}):\n${logTail(p)}`);
    }
    await sleep(50);
  }
}
