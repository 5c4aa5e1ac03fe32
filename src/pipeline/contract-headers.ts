// Header names from the public contract (architecture.md §1).
export const H = {
  tier: 'x-llm-tier',
  model: 'x-llm-model',
  tenant: 'x-tenant-id',
  classifier: 'x-llm-classifier',
  modelResolved: 'x-gateway-model-resolved',
  requestId: 'x-request-id',
  authorization: 'authorization',
  apiKey: 'x-api-key',
  contentLength: 'content-length',
  contentType: 'content-type',
  contentEncoding: 'content-encoding',
  acceptEncoding: 'accept-encoding',
  allow: 'allow',
  usageTotalTokens: 'x-usage-total-tokens',
  retryAfter: 'retry-after',
  shouldRetry: 'x-should-retry',
  budgetWarning: 'x-budget-warning',
  degraded: 'x-tiergate-degraded',
  cache: 'x-cache',
} as const;

/** Headers only tiergate may set on the request: a client's own values are always removed or overwritten. */
export const ROUTING_HEADERS = [H.tier, H.model, H.tenant, H.classifier] as const;
