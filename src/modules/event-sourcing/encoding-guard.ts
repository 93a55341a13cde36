import { ValidationError } from '../event-store/index.js';

/**
 * Throws a `ValidationError` naming the first value JSON cannot hold as it is: a `NaN` or an infinity
 * (`JSON.stringify` writes them as `null`, so the stored value would silently differ), a `bigint` (it
 * throws), or a cycle. `toJSON` is honoured, as `JSON.stringify` honours it. `field` names the root.
 */
export function checkJsonEncodable(value: unknown, field: string): void {
  walk(value, field, new Set());
}

function walk(value: unknown, path: string, ancestors: Set<object>): void {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ValidationError(path, `is ${String(value)}, which JSON cannot hold`);
    return;
  }
  if (typeof value === 'bigint') throw new ValidationError(path, 'is a bigint, which JSON cannot hold (use a string or a number)');
  if (value === null || typeof value !== 'object') return;
  const withToJson = value as { toJSON?: (key: string) => unknown };
  if (typeof withToJson.toJSON === 'function') {
    const json = withToJson.toJSON('');
    if (json !== value) return walk(json, path, ancestors);
  }
  if (ancestors.has(value)) throw new ValidationError(path, 'refers back to itself; JSON cannot hold a cycle');
  ancestors.add(value);
  if (Array.isArray(value)) value.forEach((item, i) => walk(item, `${path}[${i}]`, ancestors));
  else for (const [key, item] of Object.entries(value)) walk(item, `${path}.${key}`, ancestors);
  ancestors.delete(value);
}

/** JSON with object keys sorted, so two values that differ only in key order compare equal. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** The first path at which two JSON values differ, for an error that names the field. */
export function firstDifference(a: unknown, b: unknown, path: string): string | undefined {
  if (a === b) return undefined;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object' || Array.isArray(a) !== Array.isArray(b)) return path;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) {
    const at = Array.isArray(a) ? `${path}[${key}]` : `${path}.${key}`;
    const found = firstDifference((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], at);
    if (found) return found;
  }
  return undefined;
}
