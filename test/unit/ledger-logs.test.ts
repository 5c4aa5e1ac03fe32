// Which dates a log file holds rows of (src/ledger/read.ts datesInLogs), so that a period's rollup from log
// files reads each file only for the days it can hold.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { datesInLogs } from '../../src/ledger/read.js';
import { sampleRow } from '../helpers/ledger-rows.js';

describe('datesInLogs', () => {
  it('every date on a line that can hold a row: plain rows, rows inside records for import, whatever the prefix; none from other lines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-logs-'));
    const row = (day: string) => JSON.stringify(sampleRow({ timestamp: `${day}T10:00:00.000Z` }));
    const record = JSON.stringify({ level: 'error', time: '2026-11-29T00:00:00.000Z', event: 'ledger.rows_unsaved', sink: 'redis', rows: [row('2026-11-25')] });
    const a = join(dir, 'a.log');
    writeFileSync(a, [`2026-11-23T23:59:59.000000001Z stdout F ${row('2026-11-24')}`, record, '{"level":"info","time":"2026-11-30T00:00:00.000Z","event":"server.started"}'].join('\n'));
    const b = join(dir, 'b.log');
    writeFileSync(b, [row('2026-11-26'), 'npm warn 2026-11-27'].join('\n'));
    const dates = await datesInLogs([a, b]);
    // The prefix's date and the record's own time come along (a file read for nothing at worst); the log
    // record without rows and the stray line give none.
    expect([...(dates.get(a) ?? [])].sort()).toEqual(['2026-11-23', '2026-11-24', '2026-11-25', '2026-11-29']);
    expect([...(dates.get(b) ?? [])]).toEqual(['2026-11-26']);
  });
});
