// Where the shared, read-only fixtures live (../shared/data beside the repository).
import { fileURLToPath } from 'node:url';

/** The shared folder beside the checkout (docs, data, CRD schemas). */
export const SHARED = fileURLToPath(new URL('../../../shared/', import.meta.url));
export const SHARED_DATA = fileURLToPath(new URL('../../../shared/data/', import.meta.url));
export const FIXTURES = `${SHARED_DATA}openai-transcripts/extracted`;
