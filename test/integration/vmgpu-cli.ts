/** Run the installed `vmgpu` command (package.json "bin": the bundle) as a user would, for the CLI end-to-end tests. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const pkg = JSON.parse(fs.readFileSync(path.resolve('package.json'), 'utf8')) as { bin: { vmgpu: string } };
const CLI = path.resolve(pkg.bin.vmgpu);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Fails loudly (never skips) when the CLI has not been built. */
export function requireBuiltCli(): void {
  if (!fs.existsSync(CLI)) {
    throw new Error(`${CLI} does not exist: the CLI end-to-end tests run the built command. Run \`npm run build\` (npm test does it) and try again.`);
  }
}

/**
 * Run the command with stdout and stderr going to files (as with `> out.json`),
 * so what is checked is the command's output, not how a pipe was drained.
 * (Piped output is tested separately in cli-discover.test.ts.)
 */
export function vmgpu(args: string[], env: Record<string, string> = {}): CliResult {
  requireBuiltCli();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-cli-out-'));
  const outFile = path.join(dir, 'stdout');
  const errFile = path.join(dir, 'stderr');
  const out = fs.openSync(outFile, 'w');
  const err = fs.openSync(errFile, 'w');
  try {
    const r = spawnSync(process.execPath, [CLI, ...args], {
      stdio: ['ignore', out, err],
      env: { ...process.env, VMGPU_DEBUG: '', ...env },
      timeout: 60_000,
    });
    if (r.error) throw r.error;
    return { code: r.status ?? -1, stdout: fs.readFileSync(outFile, 'utf8'), stderr: fs.readFileSync(errFile, 'utf8') };
  } finally {
    fs.closeSync(out);
    fs.closeSync(err);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Run the command with stdout on a pipe whose reader starts late, as with
 * `vmgpu discover --json | jq` on a busy machine: `sh -c 'vmgpu ... | (sleep; cat > file)'`.
 */
export function vmgpuSlowPipe(args: string[]): string {
  requireBuiltCli();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-cli-pipe-'));
  const outFile = path.join(dir, 'stdout');
  try {
    const script = 'out="$1"; shift; "$@" | (sleep 1; cat > "$out")';
    const r = spawnSync('/bin/sh', ['-c', script, 'sh', outFile, process.execPath, CLI, ...args], { stdio: 'ignore', timeout: 60_000 });
    if (r.error) throw r.error;
    return fs.readFileSync(outFile, 'utf8');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** What a failed command printed must be one `vmgpu: ...` line (plus an optional usage line), never a stack trace. */
export function assertCleanError(r: CliResult): string {
  const lines = r.stderr.trimEnd().split('\n');
  if (!lines[0]?.startsWith('vmgpu: ')) throw new Error(`stderr does not start with "vmgpu: ": ${JSON.stringify(r.stderr)}`);
  if (lines.length > 2 || (lines.length === 2 && !lines[1]!.startsWith('usage: '))) throw new Error(`more than one message line: ${JSON.stringify(r.stderr)}`);
  if (/\n\s+at .+:\d+:\d+/.test(r.stderr) || /Error: /.test(lines[0]!.slice(0, 30))) throw new Error(`stack trace or raw error on stderr: ${r.stderr}`);
  return lines[0]!;
}
