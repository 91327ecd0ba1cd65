#!/usr/bin/env node
// Builds the Go test peers in test/peers (fake kubelet device manager, fake
// pod-resources server) into
//   ${VMGPU_CACHE:-~/.cache/vmgpu}/peers-<hash>/{kubelet,podresources}
// where <hash> covers go.mod, go.sum and every .go file under test/peers, so
// an unchanged tree reuses the cached binaries and a change rebuilds them.
//
//   node scripts/build-peers.mjs               build if needed, print a status line
//   node scripts/build-peers.mjs --print-dir   same, then print only the directory on stdout
//
// Needs Go (on PATH, in $GO, or at /usr/local/go/bin/go) and, for the first
// build, the Go module proxy to download k8s.io/kubelet and grpc.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const peersSrc = join(root, 'test', 'peers');
const BINARIES = ['kubelet', 'podresources'];

function fail(msg) {
  console.error(`[build-peers] ${msg}`);
  process.exit(1);
}

function sourceFiles(dir) {
  let files = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files = files.concat(sourceFiles(p));
    else if (name.endsWith('.go') || name === 'go.mod' || name === 'go.sum') files.push(p);
  }
  return files;
}

function treeHash() {
  if (!existsSync(join(peersSrc, 'go.mod'))) fail(`${peersSrc}/go.mod is missing: the test peers' Go module is not in this checkout.`);
  const h = createHash('sha256');
  for (const f of sourceFiles(peersSrc).map((p) => relative(peersSrc, p)).sort()) {
    const data = readFileSync(join(peersSrc, f));
    h.update(`${f}\0${data.length}\0`);
    h.update(data);
  }
  return h.digest('hex').slice(0, 16);
}

function findGo() {
  const candidates = [process.env.GO, 'go', '/usr/local/go/bin/go'].filter(Boolean);
  for (const c of candidates) {
    const r = spawnSync(c, ['version'], { encoding: 'utf8' });
    if (!r.error && r.status === 0) return c;
  }
  fail(
    'Go was not found (tried $GO, `go` on PATH and /usr/local/go/bin/go). Install Go >= 1.26 ' +
      '(https://go.dev/dl/) or set GO=/path/to/go, then run `node scripts/build-peers.mjs` again.',
  );
}

const cache = process.env.VMGPU_CACHE || join(homedir(), '.cache', 'vmgpu');
const outDir = join(cache, `peers-${treeHash()}`);
const printDir = process.argv.includes('--print-dir');
const log = (m) => (printDir ? console.error(m) : console.log(m));

if (BINARIES.every((b) => existsSync(join(outDir, b)))) {
  log(`[build-peers] up to date: ${outDir}`);
} else {
  const go = findGo();
  mkdirSync(cache, { recursive: true });
  // Build into a temporary directory next to the final one and rename it into
  // place, so a concurrent or interrupted build never leaves half a cache.
  const tmp = mkdtempSync(join(cache, '.peers-build-'));
  chmodSync(tmp, 0o755);
  const env = { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=readonly -buildvcs=false' };
  for (const b of BINARIES) {
    log(`[build-peers] go build ./${b} (first build downloads modules and takes a minute)`);
    const r = spawnSync(go, ['build', '-trimpath', '-o', join(tmp, b), `./${b}`], {
      cwd: peersSrc,
      env,
      encoding: 'utf8',
    });
    if (r.error || r.status !== 0) {
      rmSync(tmp, { recursive: true, force: true });
      const output = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
      const download = /module lookup disabled|dial tcp|no such host|i\/o timeout|connection refused|TLS handshake|reading https?:.*: (403|404|410)|verifying .*: checksum/i.test(output);
      fail(
        `go build ./${b} in ${peersSrc} failed${r.error ? ` (${r.error.message})` : ''}:\n${output}\n` +
          (download
            ? `The Go modules could not be downloaded. Check that the module proxy (GOPROXY=${process.env.GOPROXY || 'https://proxy.golang.org,direct'}) is reachable, ` +
              `or fill the module cache on a connected machine with \`cd test/peers && go mod download\`.`
            : `Fix the error above in test/peers, or run \`cd test/peers && go build ./${b}\` to see it directly.`),
      );
    }
  }
  try {
    renameSync(tmp, outDir);
  } catch (e) {
    // Another build finished first with the same sources: keep its result.
    rmSync(tmp, { recursive: true, force: true });
    if (!BINARIES.every((b) => existsSync(join(outDir, b)))) fail(`cannot move the build into ${outDir}: ${e.message}`);
  }
  log(`[build-peers] built ${BINARIES.join(', ')} into ${outDir}`);
}
if (printDir) console.log(outDir);
