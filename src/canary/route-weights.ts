// The strong tier's canary lives in one HTTPRoute rule with two weighted backendRefs (stable, canary). Moving
// it is a JSON patch whose `test` operations pin the route's shape: if someone reordered the rules or the
// backends, the API server refuses the whole patch instead of shifting traffic to the wrong place.

export interface CanaryTarget {
  namespace: string;
  route: string;
  /** The HTTPRoute rule's name (rules[].name). */
  rule: string;
  stable: string;
  canary: string;
}

export interface RouteWeights {
  /** Index of the rule in spec.rules. */
  ruleIndex: number;
  stable: number;
  canary: number;
  /** Each Service's namespace: its backendRef's, or the route's when the ref names none (Gateway API). */
  stableNamespace: string;
  canaryNamespace: string;
}

export type JsonPatchOp = { op: 'test' | 'add'; path: string; value: unknown };

interface RouteJson {
  spec?: { rules?: Array<{ name?: string; backendRefs?: Array<{ name?: string; namespace?: string; weight?: number }> }> };
}

/** Reads the weights from the route, refusing any shape it does not expect. */
export function readWeights(route: RouteJson, t: CanaryTarget): RouteWeights {
  const rules = route.spec?.rules ?? [];
  const ruleIndex = rules.findIndex((r) => r.name === t.rule);
  if (ruleIndex === -1) throw new Error(`HTTPRoute ${t.namespace}/${t.route} has no rule named "${t.rule}"`);
  const refs = rules[ruleIndex]?.backendRefs ?? [];
  const names = refs.map((r) => r.name);
  if (refs.length !== 2 || names[0] !== t.stable || names[1] !== t.canary) {
    throw new Error(`rule "${t.rule}" must have exactly the backendRefs [${t.stable}, ${t.canary}], found [${names.join(', ')}]`);
  }
  // Gateway API's default weight is 1.
  return {
    ruleIndex,
    stable: refs[0]?.weight ?? 1,
    canary: refs[1]?.weight ?? 1,
    stableNamespace: refs[0]?.namespace ?? t.namespace,
    canaryNamespace: refs[1]?.namespace ?? t.namespace,
  };
}

/**
 * The canary's share in percent, from the two weights; not rounded. Weights set by hand need not make a whole
 * percent: rounded, 999/1 read as 0% (so `check` left a canary with traffic unjudged) and 1/999 as 100% (so
 * `promote` said the canary took all of the traffic and stopped short of it).
 */
export function canaryPercent(w: RouteWeights): number {
  const total = w.stable + w.canary;
  return total === 0 ? 0 : (100 * w.canary) / total;
}

/** A share for people: at most two decimals (0.1%, 33.33%). */
export function formatPercent(p: number): string {
  return `${Number(p.toFixed(2))}%`;
}

export function weightPatch(t: CanaryTarget, ruleIndex: number, percent: number): JsonPatchOp[] {
  if (!Number.isInteger(percent) || percent < 0 || percent > 100) throw new Error(`canary percent must be an integer 0–100, got ${percent}`);
  const rule = `/spec/rules/${ruleIndex}`;
  return [
    { op: 'test', path: `${rule}/name`, value: t.rule },
    { op: 'test', path: `${rule}/backendRefs/0/name`, value: t.stable },
    { op: 'test', path: `${rule}/backendRefs/1/name`, value: t.canary },
    // `add`, not `replace`: a backendRef may leave `weight` out (Gateway API's default, 1), and JSON Patch's
    // replace fails on a member that is not there (RFC 6902 §4.3), as the API server's does; add sets it either
    // way (§4.1: an existing member's value is replaced).
    { op: 'add', path: `${rule}/backendRefs/0/weight`, value: 100 - percent },
    { op: 'add', path: `${rule}/backendRefs/1/weight`, value: percent },
  ];
}
