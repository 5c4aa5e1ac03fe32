// The configured budget store. Redis connects here, when the app is assembled, never on import.
import type { Config } from '../config/schema.js';
import type { BudgetStore } from './budget-store.js';
import { MemoryBudgetStore } from './memory/budget-store.js';
import { RedisBudgetStore } from './redis/budget-store.js';

export function createBudgetStore(cfg: Config['budgets']): BudgetStore {
  if (cfg.store === 'redis' && cfg.redis) return new RedisBudgetStore(cfg.redis);
  return new MemoryBudgetStore();
}
