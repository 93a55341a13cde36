#!/usr/bin/env node
// `npx nest-cosmos-eventstore <command>`: the operator CLI (see `main` and docs/operations.md).
import { main } from './cli.js';

process.exitCode = await main(process.argv.slice(2));
