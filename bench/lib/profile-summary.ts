/**
 * `tsx bench/lib/profile-summary.ts FILE.cpuprofile [top]`: where a CPU profile of the hub (from
 * `npm run bench:hub -- … --cpu-prof DIR`) spent its time: self time by function and by file,
 * and inclusive time of the project's own functions.
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
  hitCount?: number;
}

interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const [file, topArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: tsx bench/lib/profile-summary.ts FILE.cpuprofile [top]');
  process.exit(2);
}
const top = Number(topArg ?? 30);
const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

// Time per node from the sample deltas (µs).
const self = new Map<number, number>();
for (let i = 0; i < p.samples.length; i++) {
  const id = p.samples[i] as number;
  self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
}
const total = [...self.values()].reduce((a, b) => a + b, 0);

const shortUrl = (u: string) => u.replace(/^file:\/\/.*?\/(node_modules|hub|protocol|cli|bench)\//, '$1/').replace(/^node:/, 'node:');
const label = (n: Node) => `${n.callFrame.functionName || '(anonymous)'} ${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;

const selfByFn = new Map<string, number>();
const selfByFile = new Map<string, number>();
const inclusive = new Map<string, number>();
for (const [id, t] of self) {
  const n = byId.get(id) as Node;
  selfByFn.set(label(n), (selfByFn.get(label(n)) ?? 0) + t);
  const f = shortUrl(n.callFrame.url) || `(${n.callFrame.functionName})`;
  selfByFile.set(f, (selfByFile.get(f) ?? 0) + t);
  // Inclusive time, counted once per stack for each distinct frame of the project's own code.
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const c = byId.get(cur) as Node;
    if (!/\/(hub|protocol)\//.test(c.callFrame.url)) continue;
    const l = label(c);
    if (seen.has(l)) continue;
    seen.add(l);
    inclusive.set(l, (inclusive.get(l) ?? 0) + t);
  }
}

const show = (title: string, m: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(v / 1000).toFixed(0).padStart(8)} ms ${((v / total) * 100).toFixed(1).padStart(5)} %  ${k}`);
  }
};
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled`);
show('self time by function', selfByFn);
show('self time by file', selfByFile);
show('inclusive time of hub/ and protocol/ functions', inclusive);
