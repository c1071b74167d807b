/**
 * The Argo CD health checks in docs/argocd/, run by gopher-lua exactly as Argo CD runs a script
 * from argocd-cm (test/envtest/tools/argocd-lua), on the sample objects of each kind's
 * health_test.yaml (Argo CD's own layout for resource customizations).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { TRANSIENT_REASONS } from '../../operator/api/reasons.js';
import { Reason } from '../../operator/api/reasons.js';
import { repoRoot, requireBinary, skipEnvtest } from '../envtest/binaries.js';

const dir = join(repoRoot, 'docs/argocd');
const KINDS = ['Hub', 'Tenant', 'Branch'] as const;

interface HealthTest {
  tests: { healthStatus: { status: string; message: string }; inputPath: string }[];
}

function runHealth(script: string, objects: unknown[]): { status?: string; message?: string; error?: string }[] {
  const out = execFileSync(requireBinary('argocdLua'), [script], { input: JSON.stringify(objects), encoding: 'utf8' });
  return JSON.parse(out) as { status?: string; message?: string; error?: string }[];
}

describe.skipIf(skipEnvtest)('Argo CD health checks', () => {
  for (const kind of KINDS) {
    const base = join(dir, 'hubbroker.io', kind);
    const spec = YAML.parse(readFileSync(join(base, 'health_test.yaml'), 'utf8')) as HealthTest;

    describe(kind, () => {
      it.each(spec.tests.map((t) => [t.inputPath, t] as const))('%s', (_path, t) => {
        const obj: unknown = YAML.parse(readFileSync(join(base, t.inputPath), 'utf8'));
        const [result] = runHealth(join(base, 'health.lua'), [obj]);
        expect(result).toEqual({ status: t.healthStatus.status, ...(t.healthStatus.message ? { message: t.healthStatus.message } : {}) });
      });
    });
  }

  it('treat as transient exactly the reasons the operator calls transient', () => {
    for (const kind of KINDS) {
      const lua = readFileSync(join(dir, 'hubbroker.io', kind, 'health.lua'), 'utf8');
      const table = /local transient = \{([^}]*)\}/.exec(lua)?.[1] ?? '';
      const names = [...table.matchAll(/(\w+) = true/g)].map((m) => m[1]);
      expect(names.sort()).toEqual([...TRANSIENT_REASONS].sort());
      for (const n of names) expect(Object.values(Reason)).toContain(n);
    }
  });

  it('are shipped verbatim in the argocd-cm snippet', () => {
    const cm = YAML.parse(readFileSync(join(dir, 'argocd-cm.yaml'), 'utf8')) as { data: Record<string, string> };
    for (const kind of KINDS) {
      expect(cm.data[`resource.customizations.health.hubbroker.io_${kind}`]).toBe(readFileSync(join(dir, 'hubbroker.io', kind, 'health.lua'), 'utf8'));
    }
  });
});
