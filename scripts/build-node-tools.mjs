#!/usr/bin/env node
// Builds what the test node runs besides the Kubernetes binaries (scripts/build-k8s-tools.mjs):
//   - runc and busybox-static, Debian's packages, fetched with `apt-get download` and unpacked
//     with `dpkg-deb -x` into the cache (nothing is installed on the machine);
//   - test/images/pause, a minimal static pause program, built with Go;
//   - two OCI images as OCI-layout tars for `ctr images import` (the node has no registry):
//     vmgpu.test/busybox (busybox-static and its applet links) and vmgpu.test/pause.
// Output: ${VMGPU_CACHE:-~/.cache/vmgpu}/node-tools-<hash of the inputs>/{bin,images}/.
//
//   node scripts/build-node-tools.mjs              build what is missing
//   node scripts/build-node-tools.mjs --print-dir  print the output directory and exit
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheBase, goEnv, goLineOf, lastLines, reporter, requireGo, withLock } from './lib/go-tools.mjs';
import { writeOciImage } from './lib/oci-image.mjs';

const { log, fail } = reporter('node-tools');
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const imagesSrc = join(repo, 'test', 'images');
const DEBS = { runc: 'usr/sbin/runc', 'busybox-static': 'bin/busybox' };
export const IMAGES = { busybox: 'vmgpu.test/busybox:1', pause: 'vmgpu.test/pause:1' };

function files(dir) {
  return readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : [join(dir, n)]));
}

export function outDir() {
  const h = createHash('sha256');
  const inputs = [fileURLToPath(import.meta.url), join(repo, 'scripts', 'lib', 'oci-image.mjs'), ...files(imagesSrc)];
  for (const f of inputs.sort()) h.update(`${relative(repo, f)}\0`).update(readFileSync(f));
  return join(cacheBase(), `node-tools-${h.digest('hex').slice(0, 16)}`);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  return { ok: !r.error && r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}` };
}

// `apt-get download` with the machine's package lists; when they lack the packages (a fresh
// machine that never ran `apt-get update`), with private lists under the cache instead, so the
// machine's apt state is left as it was.
function aptDownload(debDir, aptDir) {
  const names = Object.keys(DEBS);
  if (!run('apt-get', ['--version']).ok) fail(`apt-get was not found: the test node takes ${names.join(' and ')} from Debian's archive. Run the tests on Debian (bookworm) or Ubuntu.`);
  log(`apt-get download ${names.join(' ')}…`);
  let r = run('apt-get', ['download', ...names], { cwd: debDir });
  if (r.ok) return;
  log(`the machine's apt lists do not have them (${lastLines(r.out, 1).trim()}); fetching private lists into ${aptDir}…`);
  mkdirSync(join(aptDir, 'lists', 'partial'), { recursive: true });
  mkdirSync(join(aptDir, 'cache', 'archives', 'partial'), { recursive: true });
  const priv = ['-o', `Dir::State::Lists=${join(aptDir, 'lists')}`, '-o', `Dir::Cache=${join(aptDir, 'cache')}`];
  const u = run('apt-get', [...priv, 'update']);
  if (!u.ok) fail(`apt-get update (private lists in ${aptDir}) failed: Debian's archive is not reachable.\n${lastLines(u.out, 8)}\nCheck the apt sources and the network, then run: node scripts/build-node-tools.mjs`);
  r = run('apt-get', [...priv, 'download', ...names], { cwd: debDir });
  if (!r.ok) fail(`apt-get download ${names.join(' ')} failed:\n${lastLines(r.out, 8)}\nThe test node needs Debian's runc and busybox-static packages.`);
}

function unpackDebs(debDir, binDir) {
  const versions = {};
  for (const [pkg, path] of Object.entries(DEBS)) {
    const deb = readdirSync(debDir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
    if (!deb) fail(`apt-get download left no ${pkg}_*.deb in ${debDir}`);
    versions[pkg] = decodeURIComponent(deb.split('_')[1]);
    const root = join(debDir, `${pkg}-root`);
    const x = run('dpkg-deb', ['-x', join(debDir, deb), root]);
    if (!x.ok) fail(`dpkg-deb -x ${deb} failed:\n${lastLines(x.out, 5)}`);
    copyFileSync(join(root, path), join(binDir, path.split('/').pop()));
    chmodSync(join(binDir, path.split('/').pop()), 0o755);
  }
  const ldd = run('ldd', [join(binDir, 'runc')]);
  if (/not found/.test(ldd.out)) fail(`Debian's runc needs libraries this machine lacks:\n${lastLines(ldd.out, 5)}\nInstall them (apt-get install -y libseccomp2).`);
  return versions;
}

function buildPause(binDir) {
  const go = requireGo(goLineOf([join(imagesSrc, 'go.mod')]), 'the pause program (test/images/pause)', fail, 'node scripts/build-node-tools.mjs');
  log('go build test/images/pause…');
  const r = run(go, ['build', '-trimpath', '-ldflags', '-s -w', '-o', join(binDir, 'pause'), './pause'], { cwd: imagesSrc, env: goEnv() });
  if (!r.ok) fail(`go build ./pause in ${imagesSrc} failed:\n${lastLines(r.out, 15)}`);
}

function makeImages(binDir, imgDir, work) {
  const bb = join(work, 'busybox-rootfs');
  mkdirSync(join(bb, 'bin'), { recursive: true });
  mkdirSync(join(bb, 'etc'));
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'root']) mkdirSync(join(bb, d));
  copyFileSync(join(binDir, 'busybox'), join(bb, 'bin', 'busybox'));
  chmodSync(join(bb, 'bin', 'busybox'), 0o755);
  const list = run(join(binDir, 'busybox'), ['--list']);
  if (!list.ok) fail(`busybox --list failed: ${list.out}`);
  for (const applet of list.out.split('\n').map((s) => s.trim()).filter((s) => /^[a-z0-9_.[-]+$/.test(s) && s !== 'busybox')) symlinkSync('busybox', join(bb, 'bin', applet));
  writeFileSync(join(bb, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  writeFileSync(join(bb, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  writeOciImage({ rootfs: bb, name: IMAGES.busybox, out: join(imgDir, 'busybox.tar'), entrypoint: undefined, cmd: ['sh'], env: ['PATH=/bin'] });

  const pz = join(work, 'pause-rootfs');
  mkdirSync(pz);
  copyFileSync(join(binDir, 'pause'), join(pz, 'pause'));
  chmodSync(join(pz, 'pause'), 0o755);
  writeOciImage({ rootfs: pz, name: IMAGES.pause, out: join(imgDir, 'pause.tar'), entrypoint: ['/pause'] });
}

async function build() {
  const dir = outDir();
  const stamp = join(dir, '.complete.json');
  if (existsSync(stamp)) {
    log(`cached: ${dir}`);
    return;
  }
  mkdirSync(dir, { recursive: true });
  await withLock(dir, log, async () => {
    if (existsSync(stamp)) return;
    const started = Date.now();
    const binDir = join(dir, 'bin');
    const imgDir = join(dir, 'images');
    for (const d of [binDir, imgDir]) mkdirSync(d, { recursive: true });
    const work = mkdtempSync(join(dir, '.work-'));
    try {
      const debDir = join(work, 'debs');
      mkdirSync(debDir);
      aptDownload(debDir, join(dir, 'apt'));
      const debian = unpackDebs(debDir, binDir);
      buildPause(binDir);
      makeImages(binDir, imgDir, work);
      writeFileSync(stamp, JSON.stringify({ debian, images: IMAGES, builtAt: new Date().toISOString(), buildSeconds: Math.round((Date.now() - started) / 1000) }, null, 2));
      log(`done in ${Math.round((Date.now() - started) / 1000)} s: runc ${debian.runc}, busybox ${debian['busybox-static']}, images ${Object.values(IMAGES).join(', ')} in ${dir}`);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}

const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  if (process.argv.includes('--print-dir')) console.log(outDir());
  else await build();
}
