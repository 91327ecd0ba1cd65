// deploy/Dockerfile, checked without a container engine (none on these machines, and no
// hadolint in Debian): a small Dockerfile parser and the rules the image must follow —
// multi-stage, pinned (non-latest) base images, no remote ADD, apt hygiene, OCI labels,
// USER root with its reason, a HEALTHCHECK that works without curl, ENTRYPOINT vmgpu, and a
// .dockerignore that lets in exactly what the build copies. The HEALTHCHECK command itself is
// run against a local HTTP server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_PCI_IDS_PATHS } from '../../../src/inventory/pciids.js';

const repo = resolve(import.meta.dirname, '..', '..', '..');
const dockerfilePath = join(repo, 'deploy', 'Dockerfile');

export interface Instruction {
  keyword: string;
  /** Arguments with line continuations joined. */
  args: string;
  line: number;
  /** Comment lines directly above the instruction. */
  comments: string[];
}

/** Dockerfile -> instructions (handles `\` continuations, comments, parser directives). */
export function parseDockerfile(text: string): { directives: Record<string, string>; instructions: Instruction[] } {
  const directives: Record<string, string> = {};
  const instructions: Instruction[] = [];
  const lines = text.split('\n');
  let comments: string[] = [];
  let inDirectives = true;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const trimmed = raw.trim();
    if (inDirectives) {
      const d = /^#\s*([a-z]+)\s*=\s*(\S+)\s*$/i.exec(trimmed);
      if (d) {
        directives[d[1]!.toLowerCase()] = d[2]!;
        continue;
      }
      inDirectives = false;
    }
    if (trimmed === '') {
      comments = [];
      continue;
    }
    if (trimmed.startsWith('#')) {
      comments.push(trimmed.replace(/^#\s?/, ''));
      continue;
    }
    const start = i + 1;
    let body = raw;
    let continued = /\\\s*$/.test(body);
    while (continued && i + 1 < lines.length) {
      body = body.replace(/\\\s*$/, ' ');
      i++;
      const next = lines[i]!;
      if (next.trim().startsWith('#')) continue; // comments inside a continuation are dropped
      body += next;
      continued = /\\\s*$/.test(next);
    }
    const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(body);
    assert.ok(m, `Dockerfile line ${start}: not an instruction: ${body}`);
    instructions.push({ keyword: m[1]!, args: m[2]!.replace(/\s+/g, ' ').trim(), line: start, comments });
    comments = [];
  }
  return { directives, instructions };
}

const text = readFileSync(dockerfilePath, 'utf8');
const { directives, instructions } = parseDockerfile(text);

interface Stage {
  image: string;
  name: string;
  instructions: Instruction[];
}

function stages(): Stage[] {
  // ARGs before the first FROM are the only ones usable in FROM lines.
  const globalArgs: Record<string, string> = {};
  const out: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      assert.ok(m, `Dockerfile line ${ins.line}: cannot read FROM ${ins.args}`);
      const image = m[1]!.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, v: string) => {
        assert.ok(v in globalArgs, `Dockerfile line ${ins.line}: FROM uses \${${v}} but no ARG ${v} with a default comes before the first FROM`);
        return globalArgs[v]!;
      });
      out.push({ image, name: m[2] ?? '', instructions: [] });
    } else if (out.length === 0) {
      assert.equal(ins.keyword, 'ARG', `Dockerfile line ${ins.line}: only ARG may precede the first FROM`);
      const a = /^([A-Za-z_][A-Za-z0-9_]*)=(\S+)$/.exec(ins.args);
      assert.ok(a, `Dockerfile line ${ins.line}: global ARG ${ins.args} needs a default`);
      globalArgs[a[1]!] = a[2]!;
    } else {
      out.at(-1)!.instructions.push(ins);
    }
  }
  return out;
}

const all = stages();
const runtime = all.at(-1)!;

function jsonArray(args: string, what: string): string[] {
  let v: unknown;
  try {
    v = JSON.parse(args);
  } catch {
    assert.fail(`${what} must use the exec (JSON array) form, got: ${args}`);
  }
  assert.ok(Array.isArray(v) && v.every((x) => typeof x === 'string'), `${what} must be a JSON array of strings`);
  return v as string[];
}

void test('parser: continuations, comments and directives', () => {
  const p = parseDockerfile('# syntax=docker/dockerfile:1\n# about a\nFROM a:1 AS x\n\nRUN one \\\n  # note\n  two\n');
  assert.deepEqual(p.directives, { syntax: 'docker/dockerfile:1' });
  assert.deepEqual(
    p.instructions.map((i) => [i.keyword, i.args, i.line, i.comments]),
    [
      ['FROM', 'a:1 AS x', 3, ['about a']],
      ['RUN', 'one two', 5, []],
    ],
  );
});

void test('instructions are upper-case and the syntax directive is set', () => {
  assert.ok(directives.syntax, 'a `# syntax=docker/dockerfile:1` directive pins the frontend');
  for (const i of instructions) assert.equal(i.keyword, i.keyword.toUpperCase(), `line ${i.line}: ${i.keyword} should be upper-case`);
});

void test('multi-stage: a named build stage and a separate runtime stage', () => {
  assert.ok(all.length >= 2, `expected at least two stages, got ${all.length}`);
  const names = all.map((s) => s.name);
  for (const s of all) assert.match(s.name, /^[a-z][a-z0-9-]*$/, `every stage is named (FROM ... AS name): ${s.image}`);
  assert.equal(new Set(names).size, names.length, 'stage names are unique');
  assert.equal(runtime.name, 'runtime');
  for (const i of runtime.instructions.filter((x) => x.keyword === 'COPY' && /--from=/.test(x.args))) {
    const from = /--from=(\S+)/.exec(i.args)![1]!;
    assert.ok(names.slice(0, -1).includes(from), `line ${i.line}: COPY --from=${from} is not an earlier stage`);
  }
  const build = all.find((s) => s.name === 'build');
  assert.ok(build, 'a stage named build');
  const runs = build.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args).join(' && ');
  for (const step of ['npm ci', 'npm run build', 'npm run bundle']) assert.ok(runs.includes(step), `the build stage runs ${step}`);
  assert.ok(!runtime.instructions.some((i) => i.keyword === 'RUN' && /\bnpm (ci|install)\b/.test(i.args)), 'the runtime stage installs no npm packages');
});

void test('base images are pinned: an exact version tag (or digest), never latest', () => {
  for (const s of all) {
    const [ref, digest] = s.image.split('@');
    const tag = ref!.includes(':') ? ref!.slice(ref!.lastIndexOf(':') + 1) : '';
    assert.ok(tag || digest, `${s.image}: no tag or digest (that means latest)`);
    assert.notEqual(tag, 'latest', `${s.image}: latest is not a pin`);
    if (!digest) assert.match(tag, /\d+\.\d+\.\d+/, `${s.image}: tag ${tag} names no exact x.y.z version`);
  }
  assert.match(all[0]!.image, /^node:20\.\d+\.\d+-bookworm-slim$/, 'the build stage is node:20 on Debian bookworm slim');
  assert.match(runtime.image, /^node:20\.\d+\.\d+-bookworm-slim$/, 'the runtime is Debian slim with node 20');
});

void test('no ADD (and so no remote URLs); COPY sources exist and pass .dockerignore', () => {
  assert.ok(!instructions.some((i) => i.keyword === 'ADD'), 'use COPY; ADD fetches URLs and unpacks archives implicitly');
  assert.ok(!/https?:\/\//.test(instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n')), 'no RUN downloads from a URL');
  const ignore = readFileSync(join(repo, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  assert.equal(ignore[0], '*', '.dockerignore starts by excluding everything');
  const included = ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
  for (const i of instructions.filter((x) => x.keyword === 'COPY' && !/--from=/.test(x.args))) {
    const parts = i.args.split(' ').filter((p) => !p.startsWith('--'));
    for (const src of parts.slice(0, -1)) {
      const clean = src.replace(/^\.\//, '').replace(/\/$/, '');
      assert.ok(existsSync(join(repo, clean)), `line ${i.line}: COPY ${src}: no such file in the repository`);
      assert.ok(included.includes(clean), `line ${i.line}: COPY ${src} is excluded by .dockerignore (add !${clean})`);
    }
  }
});

void test('apt: update and install in one RUN, -y --no-install-recommends, lists removed, pci.ids installed', () => {
  const apt = instructions.filter((i) => i.keyword === 'RUN' && /apt-get/.test(i.args));
  assert.ok(apt.length > 0, 'the runtime installs packages with apt-get');
  for (const i of apt) {
    assert.match(i.args, /apt-get update .*apt-get install/, `line ${i.line}: update and install in the same layer`);
    assert.match(i.args, /apt-get install -y --no-install-recommends/, `line ${i.line}: -y --no-install-recommends`);
    assert.match(i.args, /rm -rf \/var\/lib\/apt\/lists\/\*/, `line ${i.line}: remove the apt lists`);
    assert.ok(!/\b(curl|wget|sudo)\b/.test(i.args), `line ${i.line}: no curl, wget or sudo in the image`);
  }
  const runtimeRuns = runtime.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
  assert.match(runtimeRuns, /install -y --no-install-recommends[^&]*\bpci\.ids\b/, 'the Debian package pci.ids is installed');
  // The path the package installs is the first one the inventory looks at.
  assert.equal(DEFAULT_PCI_IDS_PATHS[0], '/usr/share/misc/pci.ids');
  assert.match(runtimeRuns, /test -s \/usr\/share\/misc\/pci\.ids/, 'the build fails if pci.ids is not where the inventory reads it');
  for (const i of instructions.filter((x) => x.keyword === 'RUN')) assert.ok(!/(^|&&|;)\s*cd\s/.test(i.args), `line ${i.line}: use WORKDIR, not cd`);
  for (const i of instructions.filter((x) => x.keyword === 'WORKDIR')) assert.match(i.args, /^\//, `line ${i.line}: WORKDIR must be absolute`);
});

void test('OCI labels on the runtime image', () => {
  const labels = runtime.instructions.filter((i) => i.keyword === 'LABEL').map((i) => i.args).join(' ');
  for (const k of ['title', 'description', 'version', 'revision', 'created', 'licenses', 'source']) {
    assert.match(labels, new RegExp(`org\\.opencontainers\\.image\\.${k}=`), `label org.opencontainers.image.${k}`);
  }
  assert.match(labels, /org\.opencontainers\.image\.licenses="Apache-2\.0"/, 'the licence label matches package.json');
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { license: string; version: string };
  assert.equal(pkg.license, 'Apache-2.0');
  const version = runtime.instructions.find((i) => i.keyword === 'ARG' && i.args.startsWith('VERSION='));
  assert.equal(version?.args, `VERSION=${pkg.version}`, 'the default VERSION build arg follows package.json');
});

void test('USER root, with the reason written above it; ENTRYPOINT vmgpu', () => {
  const users = runtime.instructions.filter((i) => i.keyword === 'USER');
  assert.equal(users.length, 1, 'the runtime stage sets USER once');
  assert.equal(users[0]!.args, 'root');
  assert.match(users[0]!.comments.join(' '), /sysfs/, 'the comment above USER root says why (sysfs writes)');
  const entry = runtime.instructions.filter((i) => i.keyword === 'ENTRYPOINT');
  assert.equal(entry.length, 1);
  assert.deepEqual(jsonArray(entry[0]!.args, 'ENTRYPOINT'), ['vmgpu']);
  const link = runtime.instructions.find((i) => i.keyword === 'RUN' && /ln -s \S*dist\/bundle\/vmgpu\.mjs \/usr\/local\/bin\/vmgpu/.test(i.args));
  assert.ok(link, 'vmgpu on PATH points at the bundle, dist/bundle/vmgpu.mjs');
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { bin: Record<string, string>; scripts: Record<string, string> };
  // Issue 13 item 6: an npm install runs the same bundle as the image (one chunk per group of commands).
  assert.equal(pkg.bin.vmgpu, 'dist/bundle/vmgpu.mjs', 'npm installs run the bundle the image runs');
  assert.match(pkg.scripts.bundle ?? '', /scripts\/bundle\.mjs/);
});

void test('the runtime image runs the bundle: no node_modules copied, NODE_OPTIONS keeps the agent small', () => {
  const copies = runtime.instructions.filter((i) => i.keyword === 'COPY').map((i) => i.args);
  assert.ok(!copies.some((c) => /node_modules/.test(c)), 'the bundle needs no node_modules in the image');
  assert.ok(copies.some((c) => /--from=build \/src\/dist\/bundle /.test(c)), 'the bundle is copied from the build stage');
  assert.ok(copies.some((c) => /--from=build \/src\/proto /.test(c)), 'proto/ is copied (the device plugin loads it at run time)');
  const env = runtime.instructions.filter((i) => i.keyword === 'ENV').map((i) => i.args).join(' ');
  assert.match(env, /NODE_OPTIONS="--max-semi-space-size=1"/);
  assert.match(env, /MALLOC_ARENA_MAX="1"/);
  assert.match(env, /MALLOC_TRIM_THRESHOLD_="\d+"/);
  const build = all.find((st) => st.name === 'build')!;
  assert.ok(build.instructions.some((i) => i.keyword === 'RUN' && /npm run bundle/.test(i.args)), 'the build stage bundles');
});

void test('HEALTHCHECK: exec form, node instead of curl, /healthz on the port the chart uses', async () => {
  const hc = runtime.instructions.filter((i) => i.keyword === 'HEALTHCHECK');
  assert.equal(hc.length, 1, 'one HEALTHCHECK');
  const m = /^((?:--[a-z-]+=\S+\s+)*)CMD\s+(\[.*\])$/.exec(hc[0]!.args);
  assert.ok(m, `HEALTHCHECK must be [options] CMD ["..."], got ${hc[0]!.args}`);
  const cmd = jsonArray(m[2]!, 'HEALTHCHECK CMD');
  assert.equal(cmd[0], 'node');
  assert.ok(!cmd.join(' ').match(/curl|wget/), 'no curl/wget');
  assert.match(cmd.join(' '), /\/healthz/);
  for (const opt of ['interval', 'timeout', 'retries']) assert.match(m[1]!, new RegExp(`--${opt}=`), `HEALTHCHECK --${opt}`);

  const env = runtime.instructions.filter((i) => i.keyword === 'ENV').map((i) => i.args).join(' ');
  const port = /VMGPU_METRICS_PORT=(\d+)/.exec(env)?.[1];
  const values = parseYaml(readFileSync(join(repo, 'deploy', 'helm', 'vmgpu', 'values.yaml'), 'utf8')) as { agent: { metricsPort: number } };
  assert.equal(Number(port), values.agent.metricsPort, 'the image and the chart agree on the metrics port');

  // Run the health check command against a server that answers 200, then 503, then is gone.
  const check = (p: number): Promise<number | null> =>
    new Promise((resolveRun) => {
      const child = spawn(process.execPath, cmd.slice(1), { env: { PATH: process.env.PATH ?? '', VMGPU_METRICS_PORT: String(p) }, stdio: 'ignore' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolveRun(code);
      });
    });
  let status = 200;
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(req.url ?? '');
    res.writeHead(status);
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  assert.ok(addr && typeof addr === 'object');
  try {
    assert.equal(await check(addr.port), 0, 'healthy agent -> exit 0');
    status = 503;
    assert.equal(await check(addr.port), 1, 'unhealthy agent -> exit 1');
    assert.deepEqual(seen, ['/healthz', '/healthz']);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
  assert.equal(await check(addr.port), 1, 'no agent listening -> exit 1');
});
