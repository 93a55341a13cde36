/*
 * Every ```ts block in the README and docs/ compiles as written, against the library's public entries
 * (`nest-cosmos-eventstore`, `nest-cosmos-eventstore/testing`), each block as a module of its own. A block
 * fenced as ```ts accounts.ts is that file, which later blocks of the same page import as './accounts.js'.
 * A block that is not meant to compile is not marked `ts`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function markdownFiles(): string[] {
  const docs = join(root, 'docs');
  const inDocs = (() => {
    try {
      return readdirSync(docs, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.md')).map((f) => join(docs, f));
    } catch {
      return [];
    }
  })();
  const readmes = ['README.md', 'example/README.md'].map((f) => join(root, f)).filter((f) => {
    try {
      readFileSync(f);
      return true;
    } catch {
      return false;
    }
  });
  return [...readmes, ...inDocs];
}

interface Block {
  file: string;
  line: number;
  code: string;
  /** The name other blocks of the page import it by, if the fence gives one. */
  name?: string;
}

function tsBlocks(file: string): Block[] {
  const blocks: Block[] = [];
  const lines = readFileSync(file, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(?:ts|typescript)(?:\s+([\w.-]+\.ts))?\s*$/.exec(lines[i]);
    if (!fence) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !lines[end].startsWith('```')) end++;
    // `export {}` makes a block without imports a module too, so blocks never share names.
    blocks.push({ file, line: start + 1, code: `${lines.slice(start, end).join('\n')}\nexport {};\n`, name: fence[1] });
    i = end;
  }
  return blocks;
}

function compile(blocks: Block[]): string[] {
  const config = ts.readConfigFile(join(root, 'tsconfig.json'), (f) => ts.sys.readFile(f));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  const options: ts.CompilerOptions = { ...parsed.options, noEmit: true, noUnusedLocals: false };
  // Virtual files inside the repository, so node_modules and the paths to src/ resolve as for real code.
  // One folder per page, so a page's named blocks import each other.
  const virtual = new Map(
    blocks.map((b, n) => [join(root, 'test/docs/blocks', relative(root, b.file).replace(/[/.]/g, '_'), b.name ?? `block-${n}.ts`), b] as const),
  );
  const host = ts.createCompilerHost(options);
  const { fileExists, readFile, getSourceFile, directoryExists } = host;
  const virtualDirs = new Set([...virtual.keys()].map((f) => dirname(f)));
  host.fileExists = (f) => virtual.has(f) || fileExists.call(host, f);
  host.directoryExists = (d) => virtualDirs.has(d) || (directoryExists ? directoryExists.call(host, d) : ts.sys.directoryExists(d));
  host.readFile = (f) => virtual.get(f)?.code ?? readFile.call(host, f);
  host.getSourceFile = (f, languageVersion, ...rest) => {
    const block = virtual.get(f);
    return block ? ts.createSourceFile(f, block.code, languageVersion, true) : getSourceFile.call(host, f, languageVersion, ...rest);
  };
  const program = ts.createProgram([...virtual.keys()], options, host);
  return ts.getPreEmitDiagnostics(program).flatMap((d) => {
    const block = d.file && virtual.get(d.file.fileName);
    if (!block || d.start === undefined || !d.file) return [];
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    return [`${relative(root, block.file)}:${block.line + line}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`];
  });
}

describe('TypeScript in the README and docs/', () => {
  const blocks = markdownFiles().flatMap(tsBlocks);

  it('has blocks to check', () => {
    expect(blocks.length).toBeGreaterThan(0);
  });

  it('compiles every block as written', () => {
    expect(compile(blocks)).toEqual([]);
  }, 60_000);
});
