'use strict'
// Waiting on a condition with a deadline, never a bare sleep.

const { setTimeout: delay } = require('node:timers/promises')

// Polls `check` (sync or async) until it returns a truthy value, which is returned; throws with
// `what` and the last value or error seen when `timeoutMs` passes.
async function waitUntil(check, { what, timeoutMs = 15_000, intervalMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs
  let last
  for (;;) {
    try {
      const value = await check()
      if (value) return value
      last = value
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) {
      const seen = last instanceof Error ? `${last.name}: ${last.message}` : JSON.stringify(last)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${seen})`)
    }
    await delay(intervalMs)
  }
}

module.exports = { waitUntil }
