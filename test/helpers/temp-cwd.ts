// vitest setup file: run each test process in a fresh temp directory (see vitest.config.ts).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

process.chdir(mkdtempSync(join(tmpdir(), 'tiergate-test-')));
