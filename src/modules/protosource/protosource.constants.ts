import type { DescMessage } from '@bufbuild/protobuf';

const tokens = new Map<string, symbol>();

/** The injection token of the `ProtosourceRepository` for an aggregate message (one per full message name). */
export function getProtosourceRepositoryToken(schema: DescMessage): symbol {
  let token = tokens.get(schema.typeName);
  if (!token) tokens.set(schema.typeName, (token = Symbol(`ProtosourceRepository<${schema.typeName}>`)));
  return token;
}
