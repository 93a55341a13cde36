/*
 * Protobuf wire bytes written by hand from protosource's facts (field numbers, type URLs), so golden payloads
 * never come from the code under test: varints, and length-delimited fields, in field-number order as Go's
 * proto.Marshal writes them.
 */
export type WireField = [field: number, value: string | number | bigint | Uint8Array];

export function varint(value: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}

/** A message: strings and byte arrays length-delimited (wire type 2), numbers as varints (wire type 0); zero values skipped, as proto3 does. */
export function message(...fields: WireField[]): Uint8Array {
  const out: number[] = [];
  for (const [field, value] of fields) {
    if (typeof value === 'string' || value instanceof Uint8Array) {
      const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
      if (bytes.length === 0) continue;
      out.push(...varint((field << 3) | 2), ...varint(bytes.length), ...bytes);
    } else {
      if (BigInt(value) === 0n) continue;
      out.push(...varint(field << 3), ...varint(value));
    }
  }
  return Uint8Array.from(out);
}

/** `google.protobuf.Any { type_url = 1, value = 2 }` around an event of protosource's package. */
export function anyOf(fullName: string, value: Uint8Array): Uint8Array {
  return message([1, `type.googleapis.com/${fullName}`], [2, value]);
}

/** An event's common head: id = 1, version = 2, at = 3 (µs), actor = 4. */
export function eventHead(id: string, version: number, at: bigint, actor: string): WireField[] {
  return [
    [1, id],
    [2, version],
    [3, at],
    [4, actor],
  ];
}

/** Reads a message's fields by number, as a Go reader's proto.Unmarshal sees them: varints as bigint, length-delimited as bytes. */
export function parse(bytes: Uint8Array): Map<number, Array<bigint | Uint8Array>> {
  const out = new Map<number, Array<bigint | Uint8Array>>();
  let i = 0;
  const readVarint = (): bigint => {
    let shift = 0n;
    let value = 0n;
    for (;;) {
      const byte = bytes[i++];
      if (byte === undefined) throw new Error('truncated varint');
      value |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return value;
      shift += 7n;
    }
  };
  while (i < bytes.length) {
    const tag = Number(readVarint());
    const field = tag >> 3;
    const wireType = tag & 7;
    let value: bigint | Uint8Array;
    if (wireType === 0) value = readVarint();
    else if (wireType === 2) {
      const length = Number(readVarint());
      value = bytes.subarray(i, i + length);
      i += length;
    } else throw new Error(`wire type ${wireType} not expected here`);
    out.set(field, [...(out.get(field) ?? []), value]);
  }
  return out;
}

export const str = (v: bigint | Uint8Array | undefined): string => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : '');
export const num = (v: bigint | Uint8Array | undefined): bigint => (typeof v === 'bigint' ? v : 0n);
