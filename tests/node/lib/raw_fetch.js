'use strict'
// A minimal Fetch v4 client on a raw socket, to see the record batch headers the broker stored
// (codec, producer id, base sequence): no Kafka client exposes them. Batches are stored and
// served verbatim, so this shows what kafkajs wrote. Like tests/python/kafka_wire.py.

const net = require('node:net')

const FETCH = 1
const FETCH_VERSION = 4
const MAX_BYTES = 64 * 1024 * 1024
const CODECS = ['none', 'gzip', 'snappy', 'lz4', 'zstd']
const TIMEOUT_MS = 15_000

function str(s) {
  const b = Buffer.from(s, 'utf8')
  const len = Buffer.alloc(2)
  len.writeInt16BE(b.length)
  return Buffer.concat([len, b])
}

function fetchRequest(correlationId, topic, partition, offset) {
  const head = Buffer.alloc(8)
  head.writeInt16BE(FETCH, 0)
  head.writeInt16BE(FETCH_VERSION, 2)
  head.writeInt32BE(correlationId, 4)
  const fixed = Buffer.alloc(17)
  fixed.writeInt32BE(-1, 0) // replica_id
  fixed.writeInt32BE(0, 4) // max_wait_ms
  fixed.writeInt32BE(0, 8) // min_bytes
  fixed.writeInt32BE(MAX_BYTES, 12) // max_bytes
  fixed.writeInt8(0, 16) // isolation_level: read uncommitted
  const part = Buffer.alloc(20)
  part.writeInt32BE(1, 0) // one partition
  part.writeInt32BE(partition, 4)
  part.writeBigInt64BE(BigInt(offset), 8)
  part.writeInt32BE(MAX_BYTES, 16)
  const one = Buffer.alloc(4)
  one.writeInt32BE(1) // one topic
  const body = Buffer.concat([head, str('spate-raw-fetch'), fixed, one, str(topic), part])
  const size = Buffer.alloc(4)
  size.writeInt32BE(body.length)
  return Buffer.concat([size, body])
}

// Sends one request and resolves with the response body (after the correlation id).
function roundTrip(addr, request) {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))]
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port })
    const chunks = []
    let got = 0
    sock.setTimeout(TIMEOUT_MS, () => sock.destroy(new Error(`no Fetch response within ${TIMEOUT_MS} ms`)))
    sock.on('error', reject)
    sock.on('connect', () => sock.write(request))
    sock.on('data', chunk => {
      chunks.push(chunk)
      got += chunk.length
      const all = Buffer.concat(chunks)
      if (got >= 4 && got >= 4 + all.readInt32BE(0)) {
        sock.end()
        resolve(all.subarray(8, 4 + all.readInt32BE(0)))
      }
    })
    sock.on('close', () => reject(new Error('connection closed before a full Fetch response')))
  })
}

function parseBatches(records, out) {
  let pos = 0
  while (pos + 12 <= records.length) {
    const baseOffset = records.readBigInt64BE(pos)
    const length = records.readInt32BE(pos + 8)
    if (pos + 12 + length > records.length) break // a partial batch at the end
    const b = pos + 12
    const attributes = records.readInt16BE(b + 9)
    out.push({
      baseOffset: Number(baseOffset),
      lastOffset: Number(baseOffset) + records.readInt32BE(b + 11),
      magic: records.readInt8(b + 4),
      codec: CODECS[attributes & 7] ?? `unknown(${attributes & 7})`,
      producerId: Number(records.readBigInt64BE(b + 31)),
      producerEpoch: records.readInt16BE(b + 39),
      baseSequence: records.readInt32BE(b + 41),
      recordCount: records.readInt32BE(b + 45),
    })
    pos += 12 + length
  }
}

// Every batch header of one partition, from offset 0 to the high watermark.
async function fetchBatches(broker, topic, partition) {
  const batches = []
  let offset = 0
  for (let correlationId = 1; ; correlationId++) {
    const body = await roundTrip(broker.kafkaAddr, fetchRequest(correlationId, topic, partition, offset))
    let pos = 4 // throttle_time_ms
    const topics = body.readInt32BE(pos)
    pos += 4
    if (topics !== 1) throw new Error(`Fetch answered ${topics} topics, asked 1`)
    pos += 2 + body.readInt16BE(pos) // topic name
    pos += 4 // partition count (1)
    pos += 4 // partition index
    const errorCode = body.readInt16BE(pos)
    pos += 2
    if (errorCode !== 0) throw new Error(`Fetch ${topic}/${partition} at ${offset}: error code ${errorCode}`)
    const highWatermark = Number(body.readBigInt64BE(pos))
    pos += 16 // high watermark, last stable offset
    const aborted = body.readInt32BE(pos)
    pos += 4 + Math.max(aborted, 0) * 16
    const size = body.readInt32BE(pos)
    pos += 4
    const before = batches.length
    if (size > 0) parseBatches(body.subarray(pos, pos + size), batches)
    if (batches.length === before) {
      if (offset < highWatermark) throw new Error(`Fetch at ${offset} returned no whole batch below ${highWatermark}`)
      return batches
    }
    offset = batches[batches.length - 1].lastOffset + 1
    if (offset >= highWatermark) return batches
  }
}

module.exports = { fetchBatches }
