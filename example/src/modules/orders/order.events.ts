/** The events of an order's life (past tense: what happened). Their fields are what is stored. */

export class OrderPlaced {
  constructor(readonly customerId: string) {}
}

export class LineAdded {
  constructor(
    readonly sku: string,
    readonly quantity: number,
    readonly unitPrice: number,
  ) {}
}

export class LineRemoved {
  constructor(readonly sku: string) {}
}

export class OrderSubmitted {}

export class OrderShipped {}

export class OrderCancelled {}
