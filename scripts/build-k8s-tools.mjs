#!/usr/bin/env node
// Builds the real Kubernetes node and control plane the integration tests run against —
// kube-apiserver, kubelet, kube-scheduler, kube-controller-manager, etcd, helm, and the
// container runtime containerd (daemon, containerd-shim-runc-v2 and ctr) — from the pinned
// Go modules in test/tools/k8s, into ${VMGPU_CACHE:-~/.cache/vmgpu}/k8s-<kubernetes version>/bin
// (outside the repo).
//
//   node scripts/build-k8s-tools.mjs            build what is missing, reuse the cache otherwise
//   node scripts/build-k8s-tools.mjs --force    rebuild even when the cache is complete
//   node scripts/build-k8s-tools.mjs --print-dir   print the cache directory and exit
//   node scripts/build-k8s-tools.mjs pin        (maintainers) rewrite go.mod/go.sum of the tool
//                                               modules from test/tools/k8s/versions.json
//
// Each module (test/tools/k8s/<module>/go.mod, `tool` directives) is built with the dependency
// versions its own release was tested with: helm, etcd and containerd require other versions of
// shared libraries than Kubernetes does, and one module graph would silently move them all to
// the highest. The four Kubernetes binaries share one module: their release has one go.mod, and
// `pin` checks that tidy moved none of its versions.
//
// The cache is complete only when bin/.complete.json exists and matches the pinned versions
// and go.mod/go.sum contents; it is written after every binary has been built, so an
// interrupted build is redone on the next run.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheBase, findGo, fmtDuration, goEnv, goInstallHint, goLineOf, lastLines, reporter, requireGo, runGo, withLock } from './lib/go-tools.mjs';

const { log, fail } = reporter('k8s-tools');
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const toolsDir = join(repo, 'test', 'tools', 'k8s');
const versions = JSON.parse(readFileSync(join(toolsDir, 'versions.json'), 'utf8'));
const PINNED = ['kubernetes', 'etcd', 'helm', 'containerd'];
const VERSION_RE = /^v\d+\.\d+\.\d+$/;
for (const [k, v] of [...PINNED.map((k) => [k, versions[k]]), ['oldest.kubernetes', versions.oldest?.kubernetes], ['oldest.etcd', versions.oldest?.etcd]]) {
  if (!VERSION_RE.test(v ?? '')) fail(`test/tools/k8s/versions.json: "${k}" must look like v1.2.3, got ${JSON.stringify(v)}`);
}
const helmMajor = versions.helm.split('.')[0];
// containerd without the snapshotters that need cgo or kernel pieces the tests do not use.
const CONTAINERD_TAGS = 'no_btrfs no_devmapper no_zfs no_aufs';

// Version stamps of a Kubernetes binary (no wall clock: reproducible).
function kubeLdFlags(k) {
  const [maj, min] = k.slice(1).split('.');
  const vars = { gitVersion: k, gitMajor: maj, gitMinor: min, gitTreeState: 'clean', buildDate: '1970-01-01T00:00:00Z' };
  return ['-s', '-w', ...Object.entries(vars).flatMap(([key, val]) => [`-X k8s.io/component-base/version.${key}=${val}`, `-X k8s.io/client-go/pkg/version.${key}=${val}`])];
}

// What to build: binary name, module dir, Go package, ldflags, build tags.
function targets() {
  const kube = (name) => ({ name, module: 'kubernetes', pkg: `k8s.io/kubernetes/cmd/${name}`, ldflags: kubeLdFlags(versions.kubernetes) });
  const ctrVer = '-X github.com/containerd/containerd/v2/version.Version=' + versions.containerd;
  const ctrd = (name) => ({ name, module: 'containerd', pkg: `github.com/containerd/containerd/v2/cmd/${name}`, ldflags: ['-s', '-w', ctrVer], tags: CONTAINERD_TAGS });
  const o = versions.oldest;
  return [
    { name: 'etcd', module: 'etcd', pkg: 'go.etcd.io/etcd/server/v3', ldflags: ['-s', '-w'] },
    {
      name: 'helm',
      module: 'helm',
      pkg: `helm.sh/helm/${helmMajor}/cmd/helm`,
      ldflags: ['-s', '-w', `-X helm.sh/helm/${helmMajor}/internal/version.version=${versions.helm}`, `-X helm.sh/helm/${helmMajor}/internal/version.gitTreeState=clean`],
    },
    kube('kube-apiserver'),
    kube('kubelet'),
    kube('kube-scheduler'),
    kube('kube-controller-manager'),
    ctrd('containerd'),
    ctrd('containerd-shim-runc-v2'),
    ctrd('ctr'),
    // The oldest Kubernetes the agent claims to support: its API use is tested against this API server too.
    { name: `kube-apiserver-${o.kubernetes}`, module: 'oldest-kubernetes', pkg: 'k8s.io/kubernetes/cmd/kube-apiserver', ldflags: kubeLdFlags(o.kubernetes) },
    { name: `etcd-${o.etcd}`, module: 'oldest-etcd', pkg: 'go.etcd.io/etcd/server/v3', ldflags: ['-s', '-w'] },
  ];
}
const modulesOf = (tgts) => [...new Set(tgts.map((t) => t.module))];

export function cacheDir() {
  return join(cacheBase(), `k8s-${versions.kubernetes}`);
}

function versionsOnly() {
  return { ...Object.fromEntries(PINNED.map((k) => [k, versions[k]])), oldest: versions.oldest };
}

function inputsDigest(tgts) {
  const h = createHash('sha256');
  h.update(JSON.stringify(versionsOnly()));
  for (const m of modulesOf(tgts)) for (const f of ['go.mod', 'go.sum']) h.update(readFileSync(join(toolsDir, m, f)));
  for (const t of tgts) h.update(JSON.stringify([t.name, t.ldflags, t.tags ?? '']));
  return h.digest('hex');
}

export function readStamp(dir = cacheDir()) {
  try {
    return JSON.parse(readFileSync(join(dir, 'bin', '.complete.json'), 'utf8'));
  } catch {
    return null;
  }
}

async function downloadModules(go, tgts, logFile) {
  for (const m of modulesOf(tgts)) {
    log(`downloading Go modules of test/tools/k8s/${m}…`);
    const dl = await runGo(go, ['mod', 'download'], { cwd: join(toolsDir, m), logFile, log, what: `module download for ${m}` });
    if (dl.code !== 0) {
      const proxy = spawnSync(go, ['env', 'GOPROXY'], { encoding: 'utf8' }).stdout?.trim();
      fail(
        `could not download the Go modules of test/tools/k8s/${m} (go mod download, GOPROXY=${proxy || '?'}).\n` +
          `${lastLines(dl.err ? dl.err.message : dl.tail, 12)}\n` +
          `Check that the Go module proxy is reachable (or set GOPROXY), then run: node scripts/build-k8s-tools.mjs`,
      );
    }
  }
}

async function buildOne(go, t, { binDir, digest, logFile, force }) {
  const existing = join(binDir, t.name);
  if (!force && existsSync(existing) && existsSync(`${existing}.digest`) && readFileSync(`${existing}.digest`, 'utf8') === digest) {
    log(`${t.name}: already built for these inputs, reusing`);
    return 0;
  }
  const tmp = join(binDir, `.${t.name}.tmp-${process.pid}`);
  log(`building ${t.name} (${t.pkg})…`);
  const args = ['build', '-v', '-trimpath', '-p', process.env.VMGPU_GO_BUILD_P || '2', ...(t.tags ? ['-tags', t.tags] : []), '-ldflags', t.ldflags.join(' '), '-o', tmp, t.pkg];
  const r = await runGo(go, args, { cwd: join(toolsDir, t.module), logFile, log, what: `build of ${t.name}`, countLines: true });
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
  return r.ms;
}

async function build({ force }) {
  const tgts = targets();
  const what = tgts.map((t) => t.name).join(', ');
  const go = requireGo(goLineOf(modulesOf(tgts).map((m) => join(toolsDir, m, 'go.mod'))), what, fail, 'node scripts/build-k8s-tools.mjs');
  const dir = cacheDir();
  const binDir = join(dir, 'bin');
  const digest = inputsDigest(tgts);
  const complete = () => {
    const s = readStamp(dir);
    return s && s.digest === digest && tgts.every((t) => existsSync(join(binDir, t.name)));
  };
  const summary = `${PINNED.map((k) => `${k} ${versions[k]}`).join(', ')}, oldest supported kubernetes ${versions.oldest.kubernetes} (etcd ${versions.oldest.etcd})`;
  if (!force && complete()) {
    log(`cached: ${summary} in ${binDir}`);
    return;
  }
  mkdirSync(binDir, { recursive: true });
  await withLock(dir, log, async () => {
    if (!force && complete()) {
      log(`cached (built by another run): ${binDir}`);
      return;
    }
    rmSync(join(binDir, '.complete.json'), { force: true });
    const logFile = join(dir, 'build.log');
    writeFileSync(logFile, `build started ${new Date().toISOString()} with ${go}\n`);
    const startedAll = Date.now();
    log(`building ${summary} into ${binDir} (the first build takes 20-35 minutes on 2 cores; full log: ${logFile})`);
    await downloadModules(go, tgts, logFile);
    const seconds = {};
    for (const t of tgts) seconds[t.name] = Math.round((await buildOne(go, t, { binDir, digest, logFile, force })) / 1000);
    const buildSeconds = Math.round((Date.now() - startedAll) / 1000);
    writeFileSync(join(binDir, '.complete.json'), JSON.stringify({ ...versionsOnly(), digest, builtAt: new Date().toISOString(), buildSeconds, seconds }, null, 2));
    log(`done in ${fmtDuration(Date.now() - startedAll)}: ${what} in ${binDir}`);
  });
}

// --- pin: regenerate the tool modules' go.mod/go.sum from versions.json ----------
const HEADER = '// Generated by `node scripts/build-k8s-tools.mjs pin` from test/tools/k8s/versions.json; do not edit.';
const toolBlock = (pkgs) => ['tool (', ...pkgs.map((p) => `\t${p}`), ')'];

// k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/apimachinery, …) at v0.0.0
// and points them at ./staging with replace directives, which do not apply when it is a
// dependency. Each is replaced here by the published tag of the same release: vX.Y.Z ↔ v0.Y.Z.
function kubernetesModule(name, k, upstream, cmds) {
  const stagingVersion = `v0.${k.slice(1).split('.').slice(1).join('.')}`;
  const staging = [...upstream.matchAll(/^\s*(k8s\.io\/[A-Za-z0-9._/-]+)\s+v0\.0\.0\s*$/gm)].map((m) => m[1]).sort();
  if (staging.length === 0) fail(`found no k8s.io/* v0.0.0 requirements in k8s.io/kubernetes@${k}/go.mod — the module layout changed`);
  const upGo = /^go (\d+)\.(\d+)/m.exec(upstream) ?? [null, '1', '26'];
  // `tool` lines need go 1.24; an older release keeps its own language defaults through godebug.
  const old = Number(upGo[2]) < 24;
  const goLine = old ? 'go 1.24.0' : /^go .*$/m.exec(upstream)[0];
  const godebug = old ? [`godebug default=go${upGo[1]}.${upGo[2]}`] : [...upstream.matchAll(/^godebug .*$/gm)].map((m) => m[0]);
  return [
    HEADER,
    `// Builds ${cmds.join(', ')} ${k}.`,
    `// Its staging modules are required at v0.0.0 upstream and are replaced by their published ${stagingVersion} tags below.`,
    `module vmgpu.test/tools/k8s/${name}`, '', goLine, '', ...godebug, ...(godebug.length ? [''] : []),
    ...toolBlock(cmds.map((c) => `k8s.io/kubernetes/cmd/${c}`)), '',
    `require k8s.io/kubernetes ${k}`, '',
    'replace (', ...staging.map((p) => `\t${p} => ${p} ${stagingVersion}`), ')', '',
  ];
}

const etcdModule = (name, v) => [
  HEADER, `// Builds the etcd server ${v} (the root package of go.etcd.io/etcd/server/v3 is its main).`,
  `module vmgpu.test/tools/k8s/${name}`, '', 'go 1.24', '', 'tool go.etcd.io/etcd/server/v3', '', `require go.etcd.io/etcd/server/v3 ${v}`, '',
];

function goModFiles(upstream) {
  return {
    kubernetes: kubernetesModule('kubernetes', versions.kubernetes, upstream.kubernetes, ['kube-apiserver', 'kubelet', 'kube-scheduler', 'kube-controller-manager']),
    etcd: etcdModule('etcd', versions.etcd),
    'oldest-kubernetes': kubernetesModule('oldest-kubernetes', versions.oldest.kubernetes, upstream['oldest-kubernetes'], ['kube-apiserver']),
    'oldest-etcd': etcdModule('oldest-etcd', versions.oldest.etcd),
    helm: [
      HEADER, `// Builds helm ${versions.helm}.`,
      'module vmgpu.test/tools/k8s/helm', '', 'go 1.24', '', `tool helm.sh/helm/${helmMajor}/cmd/helm`, '', `require helm.sh/helm/${helmMajor} ${versions.helm}`, '',
    ],
    containerd: [
      HEADER, `// Builds containerd ${versions.containerd}: the daemon, containerd-shim-runc-v2 and ctr. \`go install …@version\``,
      '// refuses this module (its go.mod has exclude directives), so it is built as a tool of this one.',
      'module vmgpu.test/tools/k8s/containerd', '', 'go 1.24', '',
      ...toolBlock(['containerd', 'containerd-shim-runc-v2', 'ctr'].map((c) => `github.com/containerd/containerd/v2/cmd/${c}`)), '',
      `require github.com/containerd/containerd/v2 ${versions.containerd}`, '',
    ],
  };
}

// Versions of `mod`'s requirements that differ from the ones `upstream` (its release's go.mod) names.
function movedVersions(ourMod, upstream) {
  const req = (text) => new Map([...text.matchAll(/^\s*(?:require\s+)?([a-z0-9.-]+\.[a-z]{2,}\/\S+)\s+(v\S+)/gm)].map((m) => [m[1], m[2]]));
  const up = req(upstream.replace(/^replace[\s\S]*?^\)/m, ''));
  const ours = req(ourMod.replace(/^replace[\s\S]*?^\)/m, ''));
  return [...ours].filter(([p, v]) => up.has(p) && up.get(p) !== 'v0.0.0' && up.get(p) !== v).map(([p, v]) => `${p} ${up.get(p)} -> ${v}`);
}

function pin() {
  const found = findGo();
  if (!found) fail(`the Go toolchain was not found. ${goInstallHint('go1.26.0')}`);
  const env = { ...goEnv(), GOFLAGS: '-mod=mod' };
  const goRun = (cwd, args) => {
    const r = spawnSync(found.go, args, { cwd, env, encoding: 'utf8' });
    if (r.status !== 0) fail(`go ${args.join(' ')} in ${cwd} failed:\n${lastLines(`${r.stdout}${r.stderr}`, 20)}`);
    return r.stdout;
  };
  const upstreamMod = (mod, ver) => readFileSync(JSON.parse(goRun(toolsDir, ['mod', 'download', '-json', `${mod}@${ver}`])).GoMod, 'utf8');
  const upstream = {
    kubernetes: upstreamMod('k8s.io/kubernetes', versions.kubernetes),
    'oldest-kubernetes': upstreamMod('k8s.io/kubernetes', versions.oldest.kubernetes),
    containerd: upstreamMod('github.com/containerd/containerd/v2', versions.containerd),
  };
  for (const [name, lines] of Object.entries(goModFiles(upstream))) {
    const dir = join(toolsDir, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'go.mod'), lines.join('\n'));
    writeFileSync(join(dir, 'go.sum'), '');
    log(`pin ${name}: go mod tidy…`);
    goRun(dir, ['mod', 'tidy']);
    if (upstream[name]) {
      const moved = movedVersions(readFileSync(join(dir, 'go.mod'), 'utf8'), upstream[name]);
      if (moved.length) fail(`pin ${name}: go mod tidy moved versions away from the release's own go.mod:\n    ${moved.join('\n    ')}\nSplit the tools into separate modules instead.`);
    }
  }
  log(`pinned ${PINNED.map((k) => `${k} ${versions[k]}`).join(', ')}, oldest kubernetes ${versions.oldest.kubernetes} and etcd ${versions.oldest.etcd}; commit test/tools/k8s/*/go.{mod,sum}`);
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
