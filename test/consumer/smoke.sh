#!/usr/bin/env bash
# Consumer smoke test: packs the library and installs the tarball into two scratch apps outside the
# repository, one ESM and one CommonJS, each strict TypeScript on an @nestjs/common minor other than the
# repository's. Each must import the main entry without @vercel/cosmosdb-server installed, then, with it,
# compile and run test/consumer/scenario.ts against the embedded server; npm ls must show one copy of
# @nestjs/common and of @azure/cosmos.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/nest-cosmos-consumer.XXXXXX")"
trap 'rm -rf "$work"' EXIT

cd "$repo"
tarball="$work/$(npm pack --silent --pack-destination "$work" | tail -n 1)"
echo "== packed $(basename "$tarball"): $(du -k "$tarball" | cut -f1) KiB, $(tar -tzf "$tarball" | wc -l) files"
if tar -tzf "$tarball" | grep -E '^package/(example|test|src)/|\.spec\.|/main\.js$'; then
  echo "the tarball ships files that are not the library's" >&2
  exit 1
fi
# Installing the tarball must run nothing (npm warns about install scripts, and prepare runs on git installs).
tar -xzOf "$tarball" package/package.json | node -e '
  const scripts = JSON.parse(require("fs").readFileSync(0, "utf8")).scripts ?? {};
  const run = ["preinstall", "install", "postinstall", "prepare"].filter((s) => s in scripts);
  if (run.length > 0) { console.error(`the packed manifest keeps install scripts: ${run.join(", ")}`); process.exit(1); }'

# Versions other than the repository's lockfile (@nestjs/common 12.5.x): a consumer's own choice.
nest_esm='~12.4.0'
nest_cjs='~12.3.0'

make_app() { # name type nest-range
  local dir="$work/$1" type="$2" nest="$3"
  mkdir -p "$dir/src"
  cp "$repo/test/consumer/scenario.ts" "$dir/src/main.ts"
  if [ "$type" = module ]; then
    printf '{ "name": "consumer-%s", "private": true, "type": "module" }\n' "$1" > "$dir/package.json"
    module=nodenext
  else
    printf '{ "name": "consumer-%s", "private": true }\n' "$1" > "$dir/package.json"
    module=commonjs
  fi
  cat > "$dir/tsconfig.json" <<JSON
{
  "compilerOptions": {
    "target": "ES2022",
    "module": "$module",
    "strict": true,
    "noUncheckedIndexedAccess": true,
    "experimentalDecorators": true,
    "emitDecoratorMetadata": true,
    "skipLibCheck": false,
    "types": ["node"],
    "outDir": "dist",
    "rootDir": "src"
  },
  "include": ["src"]
}
JSON
  cd "$dir"
  npm install --no-audit --no-fund --loglevel=error "$tarball" "@nestjs/common@$nest" "@nestjs/core@$nest" \
    reflect-metadata rxjs "@azure/cosmos@~4.9.3" typescript@~6.0.3 @types/node@^20.19.0 >/dev/null
  echo "== $1 ($type): the main entry without the optional peers (@nestjs/config, @nestjs/terminus, @nestjs/cqrs)"
  if [ "$type" = module ]; then
    node --input-type=module -e "import 'reflect-metadata'; const m = await import('nest-cosmos-eventstore'); if (!m.CosmosHealthIndicator) process.exit(1);"
  else
    node -e "require('reflect-metadata'); const m = require('nest-cosmos-eventstore'); if (!m.CosmosHealthIndicator) process.exit(1);"
  fi
  npm install --no-audit --no-fund --loglevel=error "@nestjs/config@^12.0.0" "@nestjs/terminus@^12.0.0" "@nestjs/cqrs@^12.0.0" \
    "@nestjs/platform-express@$nest" >/dev/null
  echo "== $1 ($type): import the main entry without @vercel/cosmosdb-server"
  if [ "$type" = module ]; then
    node --input-type=module -e "import 'reflect-metadata'; const m = await import('nest-cosmos-eventstore'); if (!m.CosmosModule) process.exit(1);"
  else
    node -e "require('reflect-metadata'); const m = require('nest-cosmos-eventstore'); if (!m.CosmosModule) process.exit(1);"
  fi
  echo "== $1: the testing entry's in-memory part without @vercel/cosmosdb-server"
  if [ "$type" = module ]; then
    node --input-type=module -e "import 'reflect-metadata'; const t = await import('nest-cosmos-eventstore/testing'); await new t.InMemoryEventStore().save('a', [{ version: 1, data: new Uint8Array() }]);"
  else
    node -e "require('reflect-metadata'); const t = require('nest-cosmos-eventstore/testing'); new t.InMemoryEventStore().save('a', [{ version: 1, data: new Uint8Array() }]).catch(() => process.exit(1));"
  fi
  npm install --no-audit --no-fund --loglevel=error --save-dev @vercel/cosmosdb-server@1.0.1 >/dev/null
  echo "== $1: compile (strict) and run the scenario"
  npx tsc -p tsconfig.json
  node dist/main.js
  echo "== $1: one copy of Nest and of the SDK"
  for pkg in @nestjs/common @nestjs/core @azure/cosmos; do
    copies="$(npm ls "$pkg" --all --parseable | sort -u | wc -l)"
    if [ "$copies" != 1 ]; then
      npm ls "$pkg" --all >&2
      echo "$1: $copies copies of $pkg" >&2
      exit 1
    fi
  done
  npm ls @nestjs/common @azure/cosmos
  cd "$repo"
}

make_app esm module "$nest_esm"
make_app cjs commonjs "$nest_cjs"
echo "consumer smoke test passed"
