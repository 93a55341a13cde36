export { startEmbeddedCosmos, type EmbeddedCosmos, type EmbeddedCosmosOptions } from './embedded-cosmos.js';
