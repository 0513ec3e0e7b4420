'use strict'
// Reads back what kafkajs produced without a consumer group: with the repo's own
// `spate consume --format json` (same binary as the broker) and with kcat -J (librdkafka).
// Both return records as { partition, offset, timestamp, key, value, headers } with key, value
// and header values as Buffers (or null) and headers as [name, value] pairs in record order.

const { execFile } = require('node:child_process')
const { promisify } = require('node:util')
const { spateBinary } = require('./broker')

const run = promisify(execFile)
const MAX_OUTPUT_BYTES = 256 * 1024 * 1024
const READ_TIMEOUT_MS = 60_000

function decode(text, encoding) {
  if (text === null) return null
  return Buffer.from(text, encoding === 'base64' ? 'base64' : 'utf8')
}

async function runTool(file, args) {
  try {
    return await run(file, args, { maxBuffer: MAX_OUTPUT_BYTES, timeout: READ_TIMEOUT_MS })
  } catch (err) {
    err.message = `${file} ${args.join(' ')} failed (${err.code ?? err.signal}): ${err.stderr || err.message}`
    throw err
  }
}

// All records of `topic` (or of one partition) up to the end offsets at the time of the call.
async function spateConsume(broker, topic, { partition } = {}) {
  const args = ['consume', topic, '--brokers', broker.kafkaAddr, '--from-beginning',
    '--exit-at-end', '--format', 'json']
  if (partition !== undefined) args.push('--partition', String(partition))
  const { stdout } = await runTool(spateBinary(), args)
  return stdout.split('\n').filter(Boolean).map(line => {
    const r = JSON.parse(line)
    return {
      partition: r.partition,
      offset: r.offset,
      timestamp: r.timestamp,
      key: decode(r.key, r.key_encoding),
      value: decode(r.value, r.value_encoding),
      headers: r.headers.map(([name, value]) => [name, decode(value, r.headers_encoding)]),
    }
  })
}

// One partition through kcat (librdkafka): text data only, kcat -J prints bytes as they are.
async function kcatConsume(broker, topic, partition, extraArgs = []) {
  const args = ['-b', broker.kafkaAddr, '-C', '-t', topic, '-p', String(partition),
    '-o', 'beginning', '-e', '-J', '-q', ...extraArgs]
  const { stdout } = await runTool('kcat', args)
  return stdout.split('\n').filter(Boolean).map(line => {
    const r = JSON.parse(line)
    const headers = []
    const flat = r.headers || []
    for (let i = 0; i < flat.length; i += 2) headers.push([flat[i], decode(flat[i + 1])])
    return {
      partition: r.partition,
      offset: r.offset,
      timestamp: r.ts,
      key: decode(r.key),
      value: decode(r.payload),
      headers,
    }
  })
}

// Buffers as strings (null stays null), to compare records with assert.deepStrictEqual.
function asText(records) {
  const text = b => (b === null ? null : b.toString('utf8'))
  return records.map(r => ({
    partition: r.partition,
    offset: r.offset,
    key: text(r.key),
    value: text(r.value),
    headers: r.headers.map(([n, v]) => [n, text(v)]),
  }))
}

module.exports = { spateConsume, kcatConsume, asText }
