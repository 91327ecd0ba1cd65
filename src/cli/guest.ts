/**
 * `vmgpu guest cloud-init`: the cloud-init `write_files` block that licenses
 * a vGPU guest (the NVIDIA ClientConfigToken and gridd.conf), as in seed 001 §4.
 * Licensing happens in the guest; the host never needs the token.
 */
import { FileTooLargeError, formatBytes, readFileBounded } from '../io/files.js';
import { write, type Command } from './command.js';
import { CliError, EXIT } from './exit-codes.js';
import { InputError } from '../model/errors.js';

export const TOKEN_PATH = '/etc/nvidia/ClientConfigToken/client_configuration_token.tok';
export const GRIDD_PATH = '/etc/nvidia/gridd.conf';
export const FEATURE_TYPES = [0, 1, 2, 4] as const;
export type FeatureType = (typeof FEATURE_TYPES)[number];
/** A client configuration token is a few KiB. */
const MAX_TOKEN_BYTES = 64 * 1024;

const FEATURE_DOC: Record<FeatureType, string> = {
  0: 'unlicensed state (no license requested)',
  1: 'NVIDIA vGPU: the driver picks the license from the vGPU profile (Q -> vWS, B -> vPC, A -> vCS)',
  2: 'NVIDIA RTX Virtual Workstation',
  4: 'NVIDIA Virtual Compute Server',
};

export function parseFeatureType(text: string | undefined): FeatureType {
  if (text === undefined) return 1;
  const n = Number(text);
  if (!FEATURE_TYPES.includes(n as FeatureType) || String(n) !== text.trim()) throw new InputError(`--feature-type ${JSON.stringify(text)}: use 0 (unlicensed), 1 (vGPU, picked from the profile), 2 (RTX vWS) or 4 (vCS)`);
  return n as FeatureType;
}

/** The block; `token` is the raw token file content (not empty). */
export function guestCloudInit(token: Buffer, featureType: FeatureType = 1, tokenFile = 'the token file'): string {
  if (token.length === 0 || token.toString('utf8').trim() === '') throw new InputError(`${tokenFile} is empty: download the client configuration token from your NVIDIA License Server (DLS/CLS) instance and pass that file`);
  const b64 = token.toString('base64');
  return [
    '#cloud-config',
    'write_files:',
    `- path: ${TOKEN_PATH}`,
    '  # 0744: nvidia-gridd may not run as the file owner (NVIDIA vGPU licensing guide)',
    "  permissions: '0744'",
    '  encoding: b64',
    `  content: ${b64}`,
    `- path: ${GRIDD_PATH}`,
    "  permissions: '0644'",
    '  content: |',
    `    # FeatureType ${featureType}: ${FEATURE_DOC[featureType]}`,
    `    FeatureType=${featureType}`,
    '',
  ].join('\n');
}

export const guestCloudInitCommand: Command = {
  summary: 'print the cloud-init write_files block that licenses a vGPU guest (ClientConfigToken + gridd.conf)',
  usage: 'vmgpu guest cloud-init --token FILE [--feature-type 0|1|2|4]',
  options: { token: { type: 'string' }, 'feature-type': { type: 'string' } },
  async run(v) {
    const file = v.token as string | undefined;
    if (!file) throw new CliError('give the client configuration token with --token FILE (download it from your NVIDIA License Server instance)');
    // The flag first: nothing is read for a command that cannot succeed.
    const featureType: FeatureType = parseFeatureType(v['feature-type'] as string | undefined);
    let token: Buffer;
    try {
      token = readFileBounded(file, MAX_TOKEN_BYTES);
    } catch (err) {
      const why = err instanceof FileTooLargeError ? `it holds more than ${formatBytes(MAX_TOKEN_BYTES)}, and a client configuration token is a few KiB` : (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
      throw new CliError(`cannot read the token ${file}: ${why}`);
    }
    write(guestCloudInit(token, featureType, file));
    return EXIT.OK;
  },
};
