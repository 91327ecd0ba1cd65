#!/usr/bin/env node
// Builds the real Kubernetes control plane the integration tests run against —
// kube-apiserver, etcd and helm — from the pinned Go modules in test/tools/k8s,
// into ${VMGPU_CACHE:-~/.cache/vmgpu}/k8s-<kubernetes version>/bin (outside the repo).
//
//   node scripts/build-k8s-tools.mjs            build what is missing, reuse the cache otherwise
//   node scripts/build-k8s-tools.mjs --force    rebuild even when the cache is complete
//   node scripts/build-k8s-tools.mjs --print-dir   print the cache directory and exit
//   node scripts/build-k8s-tools.mjs pin        (maintainers) rewrite go.mod/go.sum of the tool
//                                               modules from test/tools/k8s/versions.json
//
// Each tool is its own Go module (test/tools/k8s/<tool>/go.mod with a `tool` directive) so
// that each binary is built with the dependency versions its own release was tested with:
// helm and etcd require newer/older k8s.io and etcd libraries than kube-apiserver does, and
// one shared module graph would silently move them all to the highest version.
//
// The cache is complete only when bin/.complete.json exists and matches the pinned versions
// and go.mod/go.sum contents; it is written after every binary has been built, so an
// interrupted build is redone on the next run.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { clearInterval, setInterval, setTimeout } from 'node:timers';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const toolsDir = join(repo, 'test', 'tools', 'k8s');
const versions = JSON.parse(readFileSync(join(toolsDir, 'versions.json'), 'utf8'));
const VERSION_RE = /^v\d+\.\d+\.\d+$/;
for (const k of ['kubernetes', 'etcd', 'helm']) {
  if (!VERSION_RE.test(versions[k] ?? '')) fail(`test/tools/k8s/versions.json: "${k}" must look like v1.2.3, got ${JSON.stringify(versions[k])}`);
}

function goInstallHint(need) {
  const file = `${need}.linux-amd64.tar.gz`;
  return (
    `Install Go ${need} or newer from https://go.dev/dl/ (e.g. \`curl -LO https://go.dev/dl/${file} && ` +
    `rm -rf /usr/local/go && tar -C /usr/local -xzf ${file}\`), then put /usr/local/go/bin on PATH or point VMGPU_GO at the go binary.`
  );
}

// What to build: binary name, module dir, Go package, ldflags.
function targets() {
  const k = versions.kubernetes;
  const [maj, min] = k.slice(1).split('.');
  const buildDate = '1970-01-01T00:00:00Z'; // reproducible: no wall-clock in the binary
  const kubeVars = {
    gitVersion: k,
    gitMajor: maj,
    gitMinor: min,
    gitTreeState: 'clean',
    buildDate,
  };
  const kubeLd = [];
  for (const [key, val] of Object.entries(kubeVars)) {
    kubeLd.push(`-X k8s.io/component-base/version.${key}=${val}`, `-X k8s.io/client-go/pkg/version.${key}=${val}`);
  }
  return [
    { name: 'etcd', module: 'etcd', pkg: 'go.etcd.io/etcd/server/v3', ldflags: ['-s', '-w'] },
    {
      name: 'helm',
      module: 'helm',
      pkg: `helm.sh/helm/${versions.helm.split('.')[0]}/cmd/helm`,
      ldflags: ['-s', '-w', `-X helm.sh/helm/${versions.helm.split('.')[0]}/internal/version.version=${versions.helm}`, `-X helm.sh/helm/${versions.helm.split('.')[0]}/internal/version.gitTreeState=clean`],
    },
    { name: 'kube-apiserver', module: 'kube-apiserver', pkg: 'k8s.io/kubernetes/cmd/kube-apiserver', ldflags: ['-s', '-w', ...kubeLd] },
  ];
}

function fail(msg) {
  console.error(`[k8s-tools] ERROR: ${msg}`);
  process.exit(1);
}
function log(msg) {
  console.log(`[k8s-tools] ${msg}`);
}
function fmtDuration(ms) {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export function cacheDir() {
  const base = process.env.VMGPU_CACHE || join(homedir(), '.cache', 'vmgpu');
  return join(base, `k8s-${versions.kubernetes}`);
}

// --- locating go -------------------------------------------------------------
function findGo() {
  // VMGPU_GO, when set, is the only candidate: an explicit choice is never second-guessed.
  const candidates = process.env.VMGPU_GO
    ? [process.env.VMGPU_GO]
    : ['go', '/usr/local/go/bin/go', join(homedir(), 'go', 'bin', 'go'), join(homedir(), 'sdk', 'go', 'bin', 'go')];
  for (const c of candidates) {
    const r = spawnSync(c, ['env', 'GOVERSION'], { encoding: 'utf8' });
    if (!r.error && r.status === 0) return { go: c, version: r.stdout.trim() };
  }
  return null;
}

function goLineOf(modDir) {
  const m = /^go (\d+)\.(\d+)(?:\.(\d+))?/m.exec(readFileSync(join(toolsDir, modDir, 'go.mod'), 'utf8'));
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : [1, 0, 0];
}
function parseGoVersion(v) {
  const m = /^go(\d+)\.(\d+)(?:\.(\d+))?/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}
function cmpVer(a, b) {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

function requireGo(modules) {
  const need = modules.map(goLineOf).reduce((a, b) => (cmpVer(a, b) >= 0 ? a : b));
  const needStr = `go${need[0]}.${need[1]}.${need[2]}`;
  const found = findGo();
  if (!found) {
    fail(
      `the Go toolchain was not found (looked for ${process.env.VMGPU_GO ? `VMGPU_GO=${process.env.VMGPU_GO}` : '`go` on PATH, /usr/local/go/bin/go, ~/go/bin/go, ~/sdk/go/bin/go'}). ` +
        `It is needed to build kube-apiserver, etcd and helm for the integration tests. ${goInstallHint(needStr)} ` +
        `Then run: node scripts/build-k8s-tools.mjs`,
    );
  }
  const have = parseGoVersion(found.version);
  if (!have || cmpVer(have, need) < 0) {
    fail(`${found.go} is ${found.version}, but the tool modules in test/tools/k8s need ${needStr} or newer. ${goInstallHint(needStr)}`);
  }
  return found.go;
}

function goEnv(extra = {}) {
  return {
    ...process.env,
    CGO_ENABLED: '0',
    GOFLAGS: '-mod=readonly',
    GOWORK: 'off',
    GOTOOLCHAIN: 'local',
    ...extra,
  };
}

// Runs go with output to a log file; prints a heartbeat so a long build shows progress.
function runGo(go, args, { cwd, logFile, what, env = goEnv(), countLines = false }) {
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

function lastLines(text, n) {
  return text.trimEnd().split('\n').slice(-n).map((l) => `    ${l}`).join('\n');
}

function inputsDigest(tgts) {
  const h = createHash('sha256');
  h.update(JSON.stringify({ kubernetes: versions.kubernetes, etcd: versions.etcd, helm: versions.helm }));
  for (const t of tgts) {
    for (const f of ['go.mod', 'go.sum']) h.update(readFileSync(join(toolsDir, t.module, f)));
    h.update(JSON.stringify(t.ldflags));
  }
  return h.digest('hex');
}

export function readStamp(dir = cacheDir()) {
  try {
    return JSON.parse(readFileSync(join(dir, 'bin', '.complete.json'), 'utf8'));
  } catch {
    return null;
  }
}

// A lock so two runs (e.g. two test processes) do not build the same thing at once.
async function withLock(dir, fn) {
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

async function build({ force }) {
  const tgts = targets();
  const go = requireGo(tgts.map((t) => t.module));
  const dir = cacheDir();
  const binDir = join(dir, 'bin');
  const digest = inputsDigest(tgts);
  const complete = () => {
    const s = readStamp(dir);
    return s && s.digest === digest && tgts.every((t) => existsSync(join(binDir, t.name)));
  };
  if (!force && complete()) {
    log(`cached: kube-apiserver ${versions.kubernetes}, etcd ${versions.etcd}, helm ${versions.helm} in ${binDir}`);
    return;
  }
  mkdirSync(binDir, { recursive: true });
  await withLock(dir, async () => {
    if (!force && complete()) {
      log(`cached (built by another run): ${binDir}`);
      return;
    }
    rmSync(join(binDir, '.complete.json'), { force: true });
    const logFile = join(dir, 'build.log');
    writeFileSync(logFile, `build started ${new Date().toISOString()} with ${go}\n`);
    const startedAll = Date.now();
    log(`building into ${binDir} (first build takes 10-25 minutes on 2 cores; full log: ${logFile})`);

    for (const t of tgts) {
      const cwd = join(toolsDir, t.module);
      log(`downloading Go modules for ${t.name} (${t.module}/go.mod)…`);
      const dl = await runGo(go, ['mod', 'download'], { cwd, logFile, what: `module download for ${t.name}` });
      if (dl.code !== 0) {
        const proxy = spawnSync(go, ['env', 'GOPROXY'], { encoding: 'utf8' }).stdout?.trim();
        fail(
          `could not download the Go modules ${t.name} needs (go mod download in test/tools/k8s/${t.module}, GOPROXY=${proxy || '?'}).\n` +
            `${lastLines(dl.err ? dl.err.message : dl.tail, 12)}\n` +
            `Check that the Go module proxy is reachable (or set GOPROXY), then run: node scripts/build-k8s-tools.mjs`,
        );
      }
    }

    for (const t of tgts) {
      const existing = join(binDir, t.name);
      if (!force && existsSync(existing) && existsSync(`${existing}.digest`) && readFileSync(`${existing}.digest`, 'utf8') === digest) {
        log(`${t.name}: already built for these inputs, reusing`);
        continue;
      }
      const cwd = join(toolsDir, t.module);
      const tmp = join(binDir, `.${t.name}.tmp-${process.pid}`);
      log(`building ${t.name} (${t.pkg})…`);
      const args = ['build', '-v', '-trimpath', '-p', process.env.VMGPU_GO_BUILD_P || '2', '-ldflags', t.ldflags.join(' '), '-o', tmp, t.pkg];
      const r = await runGo(go, args, { cwd, logFile, what: `build of ${t.name}`, countLines: true });
      if (r.code !== 0) {
        rmSync(tmp, { force: true });
        fail(
          `building ${t.name} failed (go build in test/tools/k8s/${t.module}, exit ${r.code}).\n${lastLines(r.err ? r.err.message : r.tail, 20)}\n` +
            `Full log: ${logFile}. Retry with: node scripts/build-k8s-tools.mjs`,
        );
      }
      renameSync(tmp, existing);
      writeFileSync(`${existing}.digest`, digest);
      log(`built ${t.name} in ${fmtDuration(r.ms)} (${(statSync(existing).size / 1e6).toFixed(0)} MB)`);
    }

    writeFileSync(
      join(binDir, '.complete.json'),
      JSON.stringify({ ...versionsOnly(), digest, builtAt: new Date().toISOString(), buildSeconds: Math.round((Date.now() - startedAll) / 1000) }, null, 2),
    );
    log(`done in ${fmtDuration(Date.now() - startedAll)}: ${tgts.map((t) => join(binDir, t.name)).join(', ')}`);
  });
}

function versionsOnly() {
  return { kubernetes: versions.kubernetes, etcd: versions.etcd, helm: versions.helm };
}

// --- pin: regenerate the tool modules' go.mod/go.sum from versions.json ----------
// k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/apimachinery, …) at
// v0.0.0 and points them at ./staging with replace directives, which do not apply when it is
// a dependency. Each such requirement is replaced here by the published tag of the same
// release: Kubernetes vX.Y.Z ↔ staging v0.Y.Z.
function pin() {
  const found = findGo();
  if (!found) fail(`the Go toolchain was not found. ${goInstallHint('go1.26.0')}`);
  const go = found.go;
  const env = { ...goEnv(), GOFLAGS: '-mod=mod' };
  const goRun = (cwd, args) => {
    const r = spawnSync(go, args, { cwd, env, encoding: 'utf8' });
    if (r.status !== 0) fail(`go ${args.join(' ')} in ${cwd} failed:\n${lastLines(`${r.stdout}${r.stderr}`, 20)}`);
    return r.stdout;
  };
  const k = versions.kubernetes;
  const stagingVersion = `v0.${k.slice(1).split('.').slice(1).join('.')}`;
  const info = JSON.parse(goRun(toolsDir, ['mod', 'download', '-json', `k8s.io/kubernetes@${k}`]));
  const upstream = readFileSync(info.GoMod, 'utf8');
  const staging = [...upstream.matchAll(/^\s*(k8s\.io\/[A-Za-z0-9._/-]+)\s+v0\.0\.0\s*$/gm)].map((m) => m[1]).sort();
  if (staging.length === 0) fail(`found no k8s.io/* v0.0.0 requirements in k8s.io/kubernetes@${k}/go.mod — the module layout changed; inspect ${info.GoMod}`);
  const goLine = /^go .*$/m.exec(upstream)?.[0] ?? 'go 1.25.0';
  const godebug = [...upstream.matchAll(/^godebug .*$/gm)].map((m) => m[0]);

  const mods = {
    'kube-apiserver': [
      `// Generated by \`node scripts/build-k8s-tools.mjs pin\` from test/tools/k8s/versions.json; do not edit.`,
      `// Builds kube-apiserver ${k}. Its staging modules are required at v0.0.0 upstream and are`,
      `// replaced by their published ${stagingVersion} tags below.`,
      `module vmgpu.test/tools/k8s/kube-apiserver`,
      '',
      goLine,
      '',
      ...godebug,
      godebug.length ? '' : null,
      `tool k8s.io/kubernetes/cmd/kube-apiserver`,
      '',
      `require k8s.io/kubernetes ${k}`,
      '',
      'replace (',
      ...staging.map((p) => `\t${p} => ${p} ${stagingVersion}`),
      ')',
      '',
    ],
    etcd: [
      `// Generated by \`node scripts/build-k8s-tools.mjs pin\` from test/tools/k8s/versions.json; do not edit.`,
      `// Builds the etcd server ${versions.etcd} (the root package of go.etcd.io/etcd/server/v3 is its main).`,
      `module vmgpu.test/tools/k8s/etcd`,
      '',
      'go 1.24',
      '',
      `tool go.etcd.io/etcd/server/v3`,
      '',
      `require go.etcd.io/etcd/server/v3 ${versions.etcd}`,
      '',
    ],
    helm: [
      `// Generated by \`node scripts/build-k8s-tools.mjs pin\` from test/tools/k8s/versions.json; do not edit.`,
      `// Builds helm ${versions.helm}.`,
      `module vmgpu.test/tools/k8s/helm`,
      '',
      'go 1.24',
      '',
      `tool helm.sh/helm/${versions.helm.split('.')[0]}/cmd/helm`,
      '',
      `require helm.sh/helm/${versions.helm.split('.')[0]} ${versions.helm}`,
      '',
    ],
  };
  for (const [name, lines] of Object.entries(mods)) {
    const dir = join(toolsDir, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'go.mod'), lines.filter((l) => l !== null).join('\n'));
    writeFileSync(join(dir, 'go.sum'), '');
    log(`pin ${name}: go mod tidy…`);
    goRun(dir, ['mod', 'tidy']);
  }
  log(`pinned kubernetes ${k} (${staging.length} staging modules → ${stagingVersion}), etcd ${versions.etcd}, helm ${versions.helm}; commit test/tools/k8s/*/go.{mod,sum}`);
}

const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const args = process.argv.slice(2);
  if (args.includes('--print-dir')) {
    console.log(cacheDir());
  } else if (args[0] === 'pin') {
    pin();
  } else {
    const unknown = args.filter((a) => a !== '--force');
    if (unknown.length) fail(`unknown argument(s) ${unknown.join(' ')}; usage: build-k8s-tools.mjs [--force | --print-dir | pin]`);
    await build({ force: args.includes('--force') });
  }
}
