import { describe, expect, it } from 'vitest';
import { BoundedMap } from '../../src/bounded-map.js';

describe('BoundedMap', () => {
  it('starts over when a new key would pass the limit, and keeps updating a known key in place', () => {
    const m = new BoundedMap<string, number>(2);
    m.set('a', 1).set('b', 2);
    m.set('b', 3); // known key at the limit: no reset
    expect([...m]).toEqual([['a', 1], ['b', 3]]);
    m.set('c', 4); // a third key: the map starts over with it
    expect([...m]).toEqual([['c', 4]]);
  });
});
