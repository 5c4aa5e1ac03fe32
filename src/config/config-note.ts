// A note about a valid config: something it does that its author may not mean. Printed by `tiergate config
// check` (which still passes) and logged as a warning when tiergate loads the config.

export interface ConfigNote {
  path: string;
  message: string;
}
