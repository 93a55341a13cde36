import { DomainEvent, type Upcaster } from 'nest-cosmos-eventstore';

/**
 * The events of an order's life (past tense: what happened). Their fields are what is stored, under the
 * type names `@DomainEvent` gives them (the class names they always had: keep them stable).
 */

/** A price in integer cents: `12.5` → `1250` (the nearest cent; float noise such as `1.2 * 100` ≠ 120 disappears). */
export function toCents(price: number): number {
  return Math.round(price * 100);
}

/** Integer cents as an exact decimal string with two decimals, at any size: `1250n` → `"12.50"`. */
export function centsToDecimal(cents: bigint): string {
  const digits = (cents < 0n ? -cents : cents).toString().padStart(3, '0');
  return `${cents < 0n ? '-' : ''}${digits.slice(0, -2)}.${digits.slice(-2)}`;
}

/** Cents as the HTTP API shows unit prices: `1250` → `12.5` (exact: a price is at most 10^11 cents). */
export function fromCents(cents: number): number {
  return cents / 100;
}

@DomainEvent('OrderPlaced')
export class OrderPlaced {
  constructor(readonly customerId: string) {}
}

/**
 * Version 1 stored `unitPrice` as a number (`12.5`); version 2 stores integer `unitPriceCents` (`1250`), so
 * totals are exact. Version 1 events, as stored, are read as version 2 through the upcaster (the stored
 * bytes are never rewritten).
 */
export const lineAddedV1ToV2: Upcaster = ({ unitPrice, ...fields }) => {
  // Every version 1 event had a finite price (AddLine checked it): anything else is refused, never a NaN total.
  if (typeof unitPrice !== 'number' || !Number.isFinite(unitPrice)) throw new Error(`LineAdded v1 without a numeric unitPrice: ${JSON.stringify(unitPrice)}`);
  return { ...fields, unitPriceCents: toCents(unitPrice) };
};

@DomainEvent('LineAdded', { version: 2, upcasters: { 1: lineAddedV1ToV2 } })
export class LineAdded {
  constructor(
    readonly sku: string,
    readonly quantity: number,
    readonly unitPriceCents: number,
  ) {}
}

@DomainEvent('LineRemoved')
export class LineRemoved {
  constructor(readonly sku: string) {}
}

@DomainEvent('OrderSubmitted')
export class OrderSubmitted {}

@DomainEvent('OrderShipped')
export class OrderShipped {}

@DomainEvent('OrderCancelled')
export class OrderCancelled {}
