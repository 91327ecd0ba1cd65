/**
 * Which profiles the planner suggests: for a name the card does not offer, the
 * nearest sizes of the same series (`L4-7Q` -> `L4-6Q` or `L4-8Q`, not
 * `L4-1Q`); when too many of a profile are asked for, the largest profile of
 * the same series of which that many fit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allBoards } from '../../../src/model/boards.js';
import { largestThatFits, nearestProfiles } from '../../../src/plan/suggest-profile.js';
import { configOf, planOn, sim } from './helpers.js';

function offered(board: string) {
  const b = allBoards().find((x) => x.board === board);
  assert.ok(b, `board ${board}`);
  return b.profiles;
}

const nearest: { asked: string; board: string; want: string[] }[] = [
  { asked: 'L4-7Q', board: 'L4', want: ['L4-6Q', 'L4-8Q'] },
  { asked: 'L40S-13Q', board: 'L40S', want: ['L40S-12Q', 'L40S-16Q'] },
  { asked: 'L40S-64Q', board: 'L40S', want: ['L40S-48Q'] },
  { asked: 'L40S-2C', board: 'L40S', want: ['L40S-4C'] },
  { asked: 'L4-5A', board: 'L4', want: ['L4-4A', 'L4-6A'] },
  // Another board's name: the same series and size on this one.
  { asked: 'A100D-10C', board: 'H100', want: ['H100-10C', 'H100-8C', 'H100-16C'] },
  { asked: 'L40S-12Q', board: 'L4', want: ['L4-12Q', 'L4-8Q', 'L4-24Q'] },
  // MIG-backed names get MIG-backed sizes, without a media-extension attribute unless asked.
  { asked: 'H100-2-15C', board: 'H100', want: ['H100-1-10C', 'H100-1-20C'] },
  { asked: 'H100-1-15CME', board: 'H100', want: ['H100-1-10CME'] },
  // No profile of that series: the closest spellings instead.
  { asked: 'T4-4B', board: 'T4', want: ['T4-2B'] },
  { asked: 'H100-1-10Q', board: 'H100', want: ['H100-1-10C', 'H100-1-20C', 'H100-10C'] },
];

for (const c of nearest) {
  void test(`nearest to ${c.asked} on ${c.board}: ${c.want.join(', ')}`, () => {
    assert.deepEqual(nearestProfiles(c.asked, offered(c.board)), c.want);
  });
}

const fits: { asked: string; count: number; board: string; want: string | null }[] = [
  { asked: 'L4-6Q', count: 5, board: 'L4', want: 'L4-4Q' },
  { asked: 'L40S-24Q', count: 3, board: 'L40S', want: 'L40S-16Q' },
  { asked: 'L40S-1Q', count: 33, board: 'L40S', want: null },
  { asked: 'L40S-48C', count: 9, board: 'L40S', want: 'L40S-4C' },
  // Of two sizes alike, the one with more GPU instance slices (more compute).
  { asked: 'H100-3-40C', count: 3, board: 'H100', want: 'H100-2-20C' },
  { asked: 'H100-1-10C', count: 8, board: 'H100', want: null },
];

for (const c of fits) {
  void test(`${c.count} x ${c.asked} on ${c.board}: ${c.want ?? 'nothing'} fits`, () => {
    const all = offered(c.board);
    const asked = all.find((p) => p.profile === c.asked)!;
    assert.equal(largestThatFits(asked, c.count, all)?.profile ?? null, c.want);
  });
}

const L4 = { gpus: [{ model: 'L4', mode: 'sriov-vgpu' as const }] };

/** The one error of the plan about `topic` (other checks may fail too: five L4-6Q are also too much framebuffer). */
const planned: { name: string; entries: string; topic: RegExp; error: RegExp }[] = [
  { name: 'an unknown size', entries: '- devices: all\n  vgpu-devices:\n    L4-7Q: 1', topic: /not a vGPU profile/, error: /L4-7Q is not a vGPU profile of L4 \(0000:18:00\.0\)\. Did you mean "L4-6Q" or "L4-8Q"\?$/ },
  { name: 'too many', entries: '- devices: all\n  vgpu-devices:\n    L4-6Q: 5', topic: /at most/, error: /5 x L4-6Q on 0000:18:00\.0: at most 4 fit on one L4; 5 x L4-4Q fit \(the largest Q profile of which 5 do\)$/ },
  { name: 'too many, and nothing of the series fits', entries: '- devices: all\n  vgpu-devices:\n    L4-1Q: 25', topic: /at most/, error: /25 x L4-1Q on 0000:18:00\.0: at most 24 fit on one L4$/ },
];

for (const c of planned) {
  void test(`plan error with suggestion: ${c.name}`, async () => {
    const { plan } = await planOn(sim(L4), configOf(c.entries));
    const about = plan.errors.filter((e) => c.topic.test(e.message));
    assert.equal(about.length, 1, JSON.stringify(plan.errors));
    assert.match(about[0]!.message, c.error);
  });
}
