'use strict'
// Kafka error types as kafkajs reports them, looking through its wrappers.

const assert = require('node:assert/strict')

// Every `type` (e.g. TOPIC_ALREADY_EXISTS) on the error, its causes (retries exhausted), its
// `errors` (KafkaJSAggregateError), its `partitions[].error` (KafkaJSDeleteTopicRecordsError)
// and its `groups[].error` (KafkaJSDeleteGroupsError).
function errorTypes(err) {
  const types = []
  const seen = new Set()
  const walk = e => {
    if (!e || typeof e !== 'object' || seen.has(e)) return
    seen.add(e)
    if (e.type) types.push(e.type)
    if (Array.isArray(e.errors)) e.errors.forEach(walk)
    if (Array.isArray(e.partitions)) e.partitions.forEach(p => walk(p.error))
    if (Array.isArray(e.groups)) e.groups.forEach(g => walk(g.error))
    walk(e.cause)
    walk(e.originalError)
  }
  walk(err)
  return types
}

// Awaits `promise`, which must reject with a kafkajs error of this Kafka type; returns it.
async function rejectsWithType(promise, type) {
  let caught = null
  try {
    await promise
  } catch (err) {
    caught = err
  }
  assert.ok(caught, `expected a ${type} error, the call succeeded`)
  assert.ok(
    errorTypes(caught).includes(type),
    `expected ${type}, got ${caught.name}: ${caught.message} (types ${JSON.stringify(errorTypes(caught))})`
  )
  return caught
}

module.exports = { errorTypes, rejectsWithType }
