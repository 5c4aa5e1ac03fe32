// The tools a client runs itself: the model only asks for a call (an output item of the call type), the client
// does the work and sends the result back in its next turn. The provider bills them as tokens, like any
// output; they are never a plan's to allow (hostedTools) nor hosted calls in the ledger (tool_calls). Everything
// else a request may declare (web_search, file_search, code_interpreter, image_generation, mcp, …) the provider
// runs. One table for both ends, so that a tool and its calls are never judged apart.
const CLIENT_RUN: ReadonlyArray<readonly [tool: string, call: string]> = [
  ['function', 'function_call'],
  ['custom', 'custom_tool_call'],
  // Codex's shell tool on codex-mini, and the shell and apply_patch tools of GPT-5.1 and later: the client runs
  // the command or applies the patch on its own machine.
  ['local_shell', 'local_shell_call'],
  ['shell', 'shell_call'],
  ['apply_patch', 'apply_patch_call'],
  // Computer use: the client performs the click or the keystroke and sends a screenshot back.
  ['computer_use_preview', 'computer_call'],
];

/** Tool types (a request's `tools[].type`) the client runs. */
export const CLIENT_TOOLS: ReadonlySet<string> = new Set(CLIENT_RUN.map(([tool]) => tool));
/** Output item types that record a call the client runs. */
export const CLIENT_CALLS: ReadonlySet<string> = new Set(CLIENT_RUN.map(([, call]) => call));
