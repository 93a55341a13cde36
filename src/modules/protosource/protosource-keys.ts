import { ScalarType, type DescField, type DescMessage, type Message } from '@bufbuild/protobuf';
import { ValidationError } from '../event-store/index.js';

/** The value protosource stores in a secondary-index slot it leaves unmapped. */
export const UNMAPPED = 'NA';
/** The sort key of an aggregate's materialized document. */
export const AGGREGATE_SORT_KEY = 'AGG';

/** `example.app.order.v1` → `example_app_order_v1`: protosource's namespace for a proto package. */
export function protosourceNamespace(schema: DescMessage): string {
  return schema.file.proto.package.replaceAll('.', '_');
}

/** The events container's stream id (`a`) protosource gives an aggregate: `<namespace>#<id>`. */
export function protosourceStreamId(schema: DescMessage, id: string): string {
  return `${protosourceNamespace(schema)}#${id}`;
}

/** The materialized document's partition key: `<namespace>#<aggregate name, lower case>#id#<id>`. */
export function protosourcePartitionKey(aggregate: DescMessage, id: string): string {
  return `${protosourceNamespace(aggregate)}#${aggregate.name.toLowerCase()}#id#${id}`;
}

/** A projection's sort key: `PROJ#<message name>`. */
export function protosourceProjectionSortKey(projection: DescMessage): string {
  return `PROJ#${projection.name}`;
}

/**
 * A secondary-index value as protosource's generator builds it: `<namespace>#<message name, lower case>`,
 * then `#<field>#<value>` for each field in order. Values print as Go's `%v` prints them: strings as they
 * are, integers in decimal, booleans `true`/`false`, enums by value name.
 */
export function protosourceIndexValue(schema: DescMessage, values: Readonly<Record<string, unknown>>, fields: readonly string[]): string {
  let out = `${protosourceNamespace(schema)}#${schema.name.toLowerCase()}`;
  for (const name of fields) out += `#${name}#${formatValue(fieldNamed(schema, name), values)}`;
  return out;
}

/** The field of `schema` with this proto name; a clear error when there is none. */
export function fieldNamed(schema: DescMessage, name: string): DescField {
  const field = schema.fields.find((f) => f.name === name);
  if (!field) throw new ValidationError('field', `${schema.typeName} has no field ${JSON.stringify(name)}`);
  return field;
}

function formatValue(field: DescField, values: Readonly<Record<string, unknown>>): string {
  const value = values[field.localName] ?? values[field.name];
  if (field.fieldKind === 'enum') {
    const number = Number(value ?? 0);
    return field.enum.values.find((v) => v.number === number)?.name ?? String(number);
  }
  if (field.fieldKind !== 'scalar') {
    throw new ValidationError('field', `${field.parent.typeName}.${field.name} is not a scalar or enum: it cannot key an index`);
  }
  if (value === undefined || value === null) return field.scalar === ScalarType.STRING || field.scalar === ScalarType.BYTES ? '' : field.scalar === ScalarType.BOOL ? 'false' : '0';
  return String(value);
}

/** The index values of one message for the slots it maps: `NA` for a half that maps no field. */
export function protosourceIndexSlots(
  schema: DescMessage,
  message: Message,
  slots: ProtosourceIndexes | undefined,
): Record<number, { pk: string; sk: string }> | undefined {
  if (!slots) return undefined;
  const values = message as unknown as Record<string, unknown>;
  const out: Record<number, { pk: string; sk: string }> = {};
  for (const [slot, { pk, sk }] of Object.entries(slots) as Array<[string, ProtosourceIndex]>) {
    out[Number(slot)] = {
      pk: pk?.length ? protosourceIndexValue(schema, values, pk) : UNMAPPED,
      sk: sk?.length ? protosourceIndexValue(schema, values, sk) : UNMAPPED,
    };
  }
  return out;
}

/** The fields (proto names, in order) that make a slot's pk and sk. */
export interface ProtosourceIndex {
  pk?: readonly string[];
  sk?: readonly string[];
}

/** Secondary-index slots 1–20, as protosource's `protosource_opaque_field` annotations map them. */
export type ProtosourceIndexes = Partial<Record<number, ProtosourceIndex>>;
