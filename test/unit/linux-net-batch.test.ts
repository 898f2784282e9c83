import assert from 'node:assert/strict';
import { test } from 'node:test';
import { batchFailures } from '../../src/adapters/linux-net.js';

test('ip -batch failures map to their lines with their error text', () => {
  const stderr = 'Error: ipv4: Address already assigned.\nCommand failed -:2\nError: ipv4: Address not found.\nCommand failed -:3\n';
  assert.deepEqual(
    [...batchFailures(stderr)],
    [
      [2, 'Error: ipv4: Address already assigned.'],
      [3, 'Error: ipv4: Address not found.'],
    ],
  );
  assert.equal(batchFailures('').size, 0);
});
