// Closed → (N consecutive failures) → open for a cooldown → one trial call (half-open) → closed on success,
// open again on failure. While open, no request waits on a store that is known to be down.

export interface BreakerSettings {
  failures: number;
  cooldownMs: number;
}

export class CircuitBreaker {
  private consecutive = 0;
  private openUntil = 0;
  private open = false;
  private trialInFlight = false;

  constructor(
    private readonly now: () => number,
    private readonly onChange: (open: boolean) => void,
  ) {}

  get isOpen(): boolean {
    return this.open;
  }

  allows(): boolean {
    if (!this.open) return true;
    if (this.now() < this.openUntil || this.trialInFlight) return false;
    this.trialInFlight = true;
    return true;
  }

  succeeded(): void {
    this.consecutive = 0;
    this.trialInFlight = false;
    if (this.open) {
      this.open = false;
      this.onChange(false);
    }
  }

  /** `s` absent (a background call): counts the failure without knowing the request's settings. */
  failed(s: BreakerSettings | undefined): void {
    this.consecutive++;
    this.trialInFlight = false;
    const settings = s ?? this.last;
    if (s) this.last = s;
    if (this.open || this.consecutive >= settings.failures) {
      this.openUntil = this.now() + settings.cooldownMs;
      if (!this.open) {
        this.open = true;
        this.onChange(true);
      }
    }
  }

  private last: BreakerSettings = { failures: 3, cooldownMs: 2000 };
}
