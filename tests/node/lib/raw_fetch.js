'use strict'
// A minimal Fetch v4 client on a raw socket, to see the record batch headers the broker stored
// (codec, producer id, base sequence, transactional and control flags, the type of a
// transaction marker) and the last stable offset: no Kafka client exposes them. Batches are
// stored and served verbatim, so this shows what kafkajs wrote. Like tests/python/kafka_wire.py.

const net = require('node:net')

const FETCH = 1
const FETCH_VERSION = 4
const MAX_BYTES = 64 * 1024 * 1024
const CODECS = ['none', 'gzip', 'snappy', 'lz4', 'zstd']
const TIMEOUT_MS = 15_000
const READ_UNCOMMITTED = 0
const READ_COMMITTED = 1
const CONTROL_TYPES = ['ABORT', 'COMMIT']

function str(s) {
  const b = Buffer.from(s, 'utf8')
  const len = Buffer.alloc(2)
  len.writeInt16BE(b.length)
  return Buffer.concat([len, b])
}

function fetchRequest(correlationId, topic, partition, offset, isolationLevel) {
  const head = Buffer.alloc(8)
  head.writeInt16BE(FETCH, 0)
  head.writeInt16BE(FETCH_VERSION, 2)
  head.writeInt32BE(correlationId, 4)
  const fixed = Buffer.alloc(17)
  fixed.writeInt32BE(-1, 0) // replica_id
  fixed.writeInt32BE(0, 4) // max_wait_ms
  fixed.writeInt32BE(0, 8) // min_bytes
  fixed.writeInt32BE(MAX_BYTES, 12) // max_bytes
  fixed.writeInt8(isolationLevel, 16)
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

// A zigzag varint at `pos`: [value, next position].
function varint(buf, pos) {
  let raw = 0
  let shift = 0
  for (;;) {
    const byte = buf[pos++]
    raw += (byte & 0x7f) * 2 ** shift
    if ((byte & 0x80) === 0) break
    shift += 7
  }
  return [raw % 2 === 0 ? raw / 2 : -(raw + 1) / 2, pos]
}

// The marker type in the key of a control batch's (uncompressed) first record.
function controlType(records, first) {
  let pos = first
  pos = varint(records, pos)[1] // record length
  pos += 1 // attributes
  pos = varint(records, pos)[1] // timestamp delta
  pos = varint(records, pos)[1] // offset delta
  const [keyLength, key] = varint(records, pos)
  if (keyLength < 4) return `bad control key (${keyLength} bytes)`
  const type = records.readInt16BE(key + 2) // after the key's version
  return CONTROL_TYPES[type] ?? `unknown(${type})`
}

function parseBatches(records, out) {
  let pos = 0
  while (pos + 12 <= records.length) {
    const baseOffset = records.readBigInt64BE(pos)
    const length = records.readInt32BE(pos + 8)
    if (pos + 12 + length > records.length) break // a partial batch at the end
    const b = pos + 12
    const attributes = records.readInt16BE(b + 9)
    const control = (attributes & 0x20) !== 0
    out.push({
      baseOffset: Number(baseOffset),
      lastOffset: Number(baseOffset) + records.readInt32BE(b + 11),
      magic: records.readInt8(b + 4),
      codec: CODECS[attributes & 7] ?? `unknown(${attributes & 7})`,
      producerId: Number(records.readBigInt64BE(b + 31)),
      producerEpoch: records.readInt16BE(b + 39),
      baseSequence: records.readInt32BE(b + 41),
      recordCount: records.readInt32BE(b + 45),
      transactional: (attributes & 0x10) !== 0,
      control,
      controlType: control ? controlType(records, b + 49) : null,
    })
    pos += 12 + length
  }
}

// One Fetch of one partition from `offset`: the partition's high watermark, last stable offset,
// aborted transactions (read_committed only) and the whole batches of the answer.
async function fetchOnce(broker, topic, partition, offset, { isolationLevel = READ_UNCOMMITTED, correlationId = 1 } = {}) {
  const body = await roundTrip(broker.kafkaAddr, fetchRequest(correlationId, topic, partition, offset, isolationLevel))
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
  const lastStableOffset = Number(body.readBigInt64BE(pos + 8))
  pos += 16
  const abortedCount = body.readInt32BE(pos)
  pos += 4
  const abortedTransactions = []
  for (let i = 0; i < abortedCount; i++, pos += 16) {
    abortedTransactions.push({ producerId: Number(body.readBigInt64BE(pos)), firstOffset: Number(body.readBigInt64BE(pos + 8)) })
  }
  const size = body.readInt32BE(pos)
  pos += 4
  const batches = []
  if (size > 0) parseBatches(body.subarray(pos, pos + size), batches)
  return { highWatermark, lastStableOffset, abortedTransactions, batches }
}

// Every batch header of one partition, from offset 0 to the high watermark (read_uncommitted)
// or the last stable offset (read_committed).
async function fetchBatches(broker, topic, partition, { isolationLevel = READ_UNCOMMITTED } = {}) {
  const batches = []
  let offset = 0
  for (let correlationId = 1; ; correlationId++) {
    const answer = await fetchOnce(broker, topic, partition, offset, { isolationLevel, correlationId })
    const end = isolationLevel === READ_COMMITTED ? answer.lastStableOffset : answer.highWatermark
    batches.push(...answer.batches)
    if (answer.batches.length === 0) {
      if (offset < end) throw new Error(`Fetch at ${offset} returned no whole batch below ${end}`)
      return batches
    }
    offset = batches[batches.length - 1].lastOffset + 1
    if (offset >= end) return batches
  }
}

module.exports = { fetchBatches, fetchOnce, READ_COMMITTED, READ_UNCOMMITTED }
