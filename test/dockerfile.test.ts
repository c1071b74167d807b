/**
 * No Docker daemon runs here, so the image is not built in CI; this checks what breaks its build
 * most often: a source folder the compiler needs that the Dockerfile does not copy.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const root = new URL('../', import.meta.url);
const dockerfile = readFileSync(new URL('Dockerfile', root), 'utf8');
const build = JSON.parse(readFileSync(new URL('tsconfig.build.json', root), 'utf8')) as { include: string[]; extends?: string };

describe('Dockerfile', () => {
  it('copies every folder and config file that npm run build compiles from', () => {
    const copied = [...dockerfile.matchAll(/^COPY (?!--from)(.+)$/gm)].flatMap((m) => (m[1] as string).trim().split(/\s+/).slice(0, -1));
    for (const folder of build.include) expect(copied, `COPY ${folder} ./${folder}`).toContain(folder);
    for (const file of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']) expect(copied).toContain(file);
  });
});
