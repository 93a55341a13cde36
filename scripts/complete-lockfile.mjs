#!/usr/bin/env node
/*
 * Adds lockfile entries for optional dependencies npm could not resolve, so `npm ci` accepts the lockfile.
 *
 * Why: the package registry these machines reach serves only the native binaries of this platform
 * (@swc/core-darwin-arm64 answers 404, for one). npm then leaves those optional packages out of
 * package-lock.json, and `npm ci` refuses the lockfile as out of sync. An entry with the exact version the
 * parent pins is what npm would have written; npm skips it at install time like any foreign binary.
 * Run after regenerating package-lock.json from scratch: `node scripts/complete-lockfile.mjs`.
 */
import { readFileSync, writeFileSync } from 'node:fs';

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
const packages = lock.packages;
let added = 0;
for (const [key, entry] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    // Hoisted beside the parent, or at the top: npm looks in both.
    const nested = `${key ? `${key}/` : ''}node_modules/${name}`;
    if (packages[nested] || packages[`node_modules/${name}`]) continue;
    packages[`node_modules/${name}`] = { version, ...(entry.dev && { dev: true }), optional: true };
    added++;
  }
}
lock.packages = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0)),
);
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`package-lock.json: added ${added} optional entr${added === 1 ? 'y' : 'ies'}`);
