// Shared by the scripts that build test tools into ${VMGPU_CACHE:-~/.cache/vmgpu}: finding Go,
// running it with a progress heartbeat, a build lock, and uniform log/fail lines.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, createWriteStream, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { clearInterval, setInterval, setTimeout } from 'node:timers';

/** `[tag] …` lines on stdout, and a fail() that prints `[tag] ERROR: …` and exits 1. */
export function reporter(tag) {
  return {
    log: (msg) => console.log(`[${tag}] ${msg}`),
    fail: (msg) => {
      console.error(`[${tag}] ERROR: ${msg}`);
      process.exit(1);
    },
  };
}

export function cacheBase() {
  return process.env.VMGPU_CACHE || join(homedir(), '.cache', 'vmgpu');
}

export function fmtDuration(ms) {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export function lastLines(text, n) {
  return text.trimEnd().split('\n').slice(-n).map((l) => `    ${l}`).join('\n');
}

export function goInstallHint(need) {
  const file = `${need}.linux-amd64.tar.gz`;
  return (
    `Install Go ${need} or newer from https://go.dev/dl/ (e.g. \`curl -LO https://go.dev/dl/${file} && ` +
    `rm -rf /usr/local/go && tar -C /usr/local -xzf ${file}\`), then put /usr/local/go/bin on PATH or point VMGPU_GO at the go binary.`
  );
}

// VMGPU_GO, when set, is the only candidate: an explicit choice is never second-guessed.
export function findGo() {
  const candidates = process.env.VMGPU_GO
    ? [process.env.VMGPU_GO]
    : ['go', '/usr/local/go/bin/go', join(homedir(), 'go', 'bin', 'go'), join(homedir(), 'sdk', 'go', 'bin', 'go')];
  for (const c of candidates) {
    const r = spawnSync(c, ['env', 'GOVERSION'], { encoding: 'utf8' });
    if (!r.error && r.status === 0) return { go: c, version: r.stdout.trim() };
  }
  return null;
}

function parseGoVersion(v) {
  const m = /^(?:go)?(\d+)\.(\d+)(?:\.(\d+))?/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}
function cmpVer(a, b) {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** The highest `go` line among the given go.mod files, as go1.2.3. */
export function goLineOf(goModFiles) {
  let need = [1, 0, 0];
  for (const f of goModFiles) {
    const m = /^go (\d+\.\d+(?:\.\d+)?)/m.exec(readFileSync(f, 'utf8'));
    const v = m ? parseGoVersion(m[1]) : null;
    if (v && cmpVer(v, need) > 0) need = v;
  }
  return `go${need.join('.')}`;
}

/** The go binary, or fail() saying what to install and `retry` (the command to run after); `need` is e.g. go1.26.0, `what` what it builds. */
export function requireGo(need, what, fail, retry) {
  const found = findGo();
  if (!found) {
    fail(
      `the Go toolchain was not found (looked for ${process.env.VMGPU_GO ? `VMGPU_GO=${process.env.VMGPU_GO}` : '`go` on PATH, /usr/local/go/bin/go, ~/go/bin/go, ~/sdk/go/bin/go'}). ` +
        `It is needed to build ${what} for the integration tests. ${goInstallHint(need)} Then run: ${retry}`,
    );
  }
  const have = parseGoVersion(found.version);
  if (!have || cmpVer(have, parseGoVersion(need)) < 0) fail(`${found.go} is ${found.version}, but building ${what} needs ${need} or newer. ${goInstallHint(need)} Then run: ${retry}`);
  return found.go;
}

export function goEnv(extra = {}) {
  return { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=readonly', GOWORK: 'off', GOTOOLCHAIN: 'local', ...extra };
}

/** Runs go with output appended to logFile; prints a heartbeat every 30 s so a long build shows progress. */
export function runGo(go, args, { cwd, logFile, what, log, env = goEnv(), countLines = false }) {
  return new Promise((resolvePromise) => {
    const out = createWriteStream(logFile, { flags: 'a' });
    out.write(`\n$ (cd ${cwd} && go ${args.join(' ')})\n`);
    const started = Date.now();
    const child = spawn(go, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let lines = 0;
    let tail = '';
    const onData = (chunk) => {
      out.write(chunk);
      const s = chunk.toString();
      if (countLines) lines += s.split('\n').length - 1;
      tail = (tail + s).slice(-4000);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setInterval(() => {
      log(`  … ${what}: ${fmtDuration(Date.now() - started)} elapsed${countLines ? `, ${lines} packages compiled` : ''} (log: ${logFile})`);
    }, 30_000);
    const finish = (code, err) => {
      clearInterval(timer);
      out.end();
      resolvePromise({ code, err, tail, ms: Date.now() - started });
    };
    child.on('error', (err) => finish(-1, err));
    child.on('close', (code) => finish(code ?? -1, null));
  });
}

/** A lock file in `dir` so two runs (e.g. two test processes) do not build the same thing at once. */
export async function withLock(dir, log, fn) {
  const lock = join(dir, '.build.lock');
  for (let waited = 0; ; waited++) {
    try {
      const fd = openSync(lock, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      let holder = NaN;
      try {
        holder = Number(readFileSync(lock, 'utf8'));
      } catch {
        /* raced with its removal */
      }
      let alive = false;
      if (Number.isInteger(holder) && holder > 0) {
        try {
          process.kill(holder, 0);
          alive = true;
        } catch {
          alive = false;
        }
      }
      if (!alive) {
        rmSync(lock, { force: true });
        continue;
      }
      if (waited % 12 === 0) log(`another build (pid ${holder}) holds ${lock}; waiting for it…`);
      await new Promise((r) => setTimeout(r, 5000));
    }
  }
  const release = () => rmSync(lock, { force: true });
  process.on('exit', release);
  try {
    return await fn();
  } finally {
    release();
  }
}
