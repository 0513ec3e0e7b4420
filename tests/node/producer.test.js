'use strict'
// kafkajs's producer against `spate serve` (Produce v7, Metadata v6, InitProducerId v1), read
// back without a consumer group: `spate consume` (the repo's own client) and kcat (librdkafka),
// plus a raw Fetch for what no client shows (stored codec, producer id, sequence numbers).

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const { CompressionTypes, Partitioners } = require('kafkajs')

const { startBroker } = require('./lib/broker')
const { kafkaFor, uniqueTopic } = require('./lib/clients')
const { rejectsWithType } = require('./lib/errors')
const { fetchBatches } = require('./lib/raw_fetch')
const { asText, kcatConsume, spateConsume } = require('./lib/readback')
const { waitUntil } = require('./lib/wait')

let broker
let kafka
let admin
let producer

before(async () => {
  broker = await startBroker()
  kafka = kafkaFor(broker, { clientId: 'kafkajs-producer-tests' })
  admin = kafka.admin()
  await admin.connect()
  producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
})

after(async () => {
  await producer?.disconnect()
  await admin?.disconnect()
  await broker?.stop()
})

async function createTopic(prefix, { numPartitions = 1, configEntries = [] } = {}) {
  const topic = uniqueTopic(prefix)
  const created = await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions, configEntries }] })
  assert.equal(created, true)
  return topic
}

describe('records', () => {
  it('keys, headers (binary, empty), null values and timestamps round-trip in order', async () => {
    const topic = await createTopic('prod-records')
    const ts = Date.now() - 5_000
    const binary = Buffer.from([0x00, 0xff, 0x80, 0x7f])
    const messages = [
      { key: 'k1', value: 'v1', headers: { trace: 'abc', span: 'def' }, timestamp: String(ts) },
      { key: 'k2', value: null, timestamp: String(ts + 1) }, // a tombstone
      { key: null, value: 'no key', timestamp: String(ts + 2) },
      { key: null, value: null, timestamp: String(ts + 3) },
      // kafkajs 2.2.4 cannot send a null header value (TypeError in sizeOfHeaders).
      { key: 'k3', value: '', headers: { empty: '' }, timestamp: String(ts + 4) },
      { key: binary, value: binary, headers: { bin: binary }, timestamp: String(ts + 5) },
      { key: 'ünïcødé ✓', value: 'värde ✓', headers: { 'nåme ✓': 'välue ✓' }, timestamp: String(ts + 6) },
    ]
    const [meta] = await producer.send({ topic, acks: -1, messages })
    assert.deepEqual([meta.partition, meta.errorCode, meta.baseOffset], [0, 0, '0'])

    const records = await spateConsume(broker, topic)
    assert.equal(records.length, messages.length)
    const buf = v => (v === null ? null : Buffer.from(v))
    records.forEach((r, i) => {
      const m = messages[i]
      assert.equal(r.partition, 0)
      assert.equal(r.offset, i)
      assert.equal(r.timestamp, Number(m.timestamp), `timestamp of record ${i}`)
      assert.deepEqual(r.key, buf(m.key), `key of record ${i}`)
      assert.deepEqual(r.value, buf(m.value), `value of record ${i}`)
      const headers = Object.entries(m.headers || {}).flatMap(([name, v]) =>
        Array.isArray(v) ? v.map(x => [name, buf(x)]) : [[name, buf(v)]]
      )
      assert.deepEqual(r.headers, headers, `headers of record ${i}`)
    })
  })

  it('kcat (librdkafka) reads the same keys, values, headers and offsets as spate consume', async () => {
    const topic = await createTopic('prod-kcat', { numPartitions: 2 })
    const messages = []
    for (let i = 0; i < 20; i++) {
      messages.push({ partition: i % 2, key: `key-${i}`, value: `value-${i}`, headers: { seq: String(i), src: 'kafkajs' } })
    }
    messages.push({ partition: 1, key: 'gone', value: null })
    await producer.send({ topic, acks: -1, messages })

    for (const partition of [0, 1]) {
      const expected = messages
        .filter(m => m.partition === partition)
        .map((m, offset) => ({
          partition,
          offset,
          key: m.key,
          value: m.value,
          headers: Object.entries(m.headers || {}),
        }))
      assert.deepEqual(asText(await kcatConsume(broker, topic, partition)), expected, `kcat, partition ${partition}`)
      assert.deepEqual(asText(await spateConsume(broker, topic, { partition })), expected, `spate consume, partition ${partition}`)
    }
  })

  it('repeated header names keep every value in order (kcat and spate consume)', async () => {
    // Kafka headers are a list: a name may repeat. kafkajs sends an array value as one header
    // per element.
    const topic = await createTopic('prod-repeated-headers')
    await producer.send({
      topic,
      acks: -1,
      messages: [{ key: 'k', value: 'v', headers: { hop: ['a', 'b', 'c'], other: 'x' } }],
    })
    const expected = [{
      partition: 0,
      offset: 0,
      key: 'k',
      value: 'v',
      headers: [['hop', 'a'], ['hop', 'b'], ['hop', 'c'], ['other', 'x']],
    }]
    const viaKcat = asText(await kcatConsume(broker, topic, 0))
    assert.deepEqual(viaKcat, expected, `kcat read headers ${JSON.stringify(viaKcat[0]?.headers)}`)
    const viaSpate = asText(await spateConsume(broker, topic))
    assert.deepEqual(viaSpate, expected, `spate consume read headers ${JSON.stringify(viaSpate[0]?.headers)}`)
  })

  it('a send to an unknown topic auto-creates it (Metadata v6 allow_auto_topic_creation)', async () => {
    const topic = uniqueTopic('prod-autocreate')
    const [meta] = await producer.send({ topic, acks: -1, messages: [{ value: 'first' }] })
    assert.deepEqual([meta.topicName, meta.errorCode, meta.baseOffset], [topic, 0, '0'])
    assert.ok((await admin.listTopics()).includes(topic))
    assert.deepEqual((await spateConsume(broker, topic)).map(r => r.value.toString()), ['first'])
  })
})

describe('acks', () => {
  async function sendFive(topic, acks) {
    const offsets = []
    for (let i = 0; i < 5; i++) {
      const [meta] = await producer.send({ topic, acks, messages: [{ value: `a${i}` }, { value: `b${i}` }] })
      assert.equal(meta.errorCode, 0)
      offsets.push(meta.baseOffset)
    }
    assert.deepEqual(offsets, ['0', '2', '4', '6', '8'])
  }
  const sent = [0, 1, 2, 3, 4].flatMap(i => [`a${i}`, `b${i}`])

  it('acks -1: each send is acknowledged with the next base offset, and readable at once', async () => {
    const topic = await createTopic('prod-acksall')
    await sendFive(topic, -1)
    const records = await spateConsume(broker, topic)
    assert.deepEqual(records.map(r => r.value.toString()), sent)
  })

  it('acks 1: each send is acknowledged with the next base offset, and the records arrive', async () => {
    const topic = await createTopic('prod-acks1')
    await sendFive(topic, 1)
    // Spate answers acks=1 after the append, before the fsync that makes the records visible
    // (with flush.messages=1 the high watermark is the durable mark), so a read right after the
    // ack may not see them yet; Kafka shows them before it answers. See compat/FINDINGS.md.
    await waitUntil(async () => (await admin.fetchTopicOffsets(topic))[0].high === '10', {
      what: 'high watermark 10 after five acks=1 sends',
    })
    const records = await spateConsume(broker, topic)
    assert.deepEqual(records.map(r => r.value.toString()), sent)
  })

  it('acks 0: nothing is answered, the records still arrive in order', async () => {
    const topic = await createTopic('prod-acks0')
    for (let i = 0; i < 5; i++) {
      await producer.send({ topic, acks: 0, messages: [{ value: `n${i}` }] })
    }
    await waitUntil(async () => (await admin.fetchTopicOffsets(topic))[0].high === '5', {
      what: 'high watermark 5 after five acks=0 sends',
    })
    // An answer to an acks=0 request would arrive on the producer's connection unasked; the
    // same connection must still work for a normal send.
    const [meta] = await producer.send({ topic, acks: -1, messages: [{ value: 'after' }] })
    assert.equal(meta.baseOffset, '5')
    const records = await spateConsume(broker, topic)
    assert.deepEqual(records.map(r => r.value.toString()), ['n0', 'n1', 'n2', 'n3', 'n4', 'after'])
  })
})

describe('compression', () => {
  // kafkajs ships gzip; snappy and lz4 come from kafkajs-snappy and kafkajs-lz4 (lib/clients.js).
  // zstd is not tested: @kafkajs/zstd does not build on Node 20 (see README.md).
  const codecs = [
    ['none', CompressionTypes.None],
    ['gzip', CompressionTypes.GZIP],
    ['snappy', CompressionTypes.Snappy],
    ['lz4', CompressionTypes.LZ4],
  ]
  for (const [name, compression] of codecs) {
    it(`${name}: batches are stored with the codec kafkajs used and read back intact`, async () => {
      const topic = await createTopic(`prod-${name}`, { numPartitions: 2 })
      const messages = []
      for (let i = 0; i < 200; i++) {
        messages.push({
          partition: i % 2,
          key: `key-${i % 7}`,
          value: `${name} record ${i} `.repeat(20),
          headers: { n: String(i) },
        })
      }
      await producer.send({ topic, acks: -1, compression, messages: messages.slice(0, 100) })
      await producer.send({ topic, acks: -1, compression, messages: messages.slice(100) })

      for (const partition of [0, 1]) {
        const batches = await fetchBatches(broker, topic, partition)
        assert.equal(batches.length, 2, `two sends, two batches in partition ${partition}`)
        for (const b of batches) {
          assert.equal(b.magic, 2)
          assert.equal(b.codec, name, `stored codec in partition ${partition} at ${b.baseOffset}`)
          assert.equal(b.recordCount, 50)
        }
        const expected = messages
          .filter(m => m.partition === partition)
          .map((m, offset) => ({ partition, offset, key: m.key, value: m.value, headers: [['n', m.headers.n]] }))
        assert.deepEqual(asText(await spateConsume(broker, topic, { partition })), expected)
      }
    })
  }
})

describe('batches', () => {
  it('sendBatch across topics and partitions lands each record where kafkajs put it', async () => {
    const a = await createTopic('prod-batch-a', { numPartitions: 3 })
    const b = await createTopic('prod-batch-b', { numPartitions: 2 })
    const topicMessages = [
      {
        topic: a,
        messages: [
          ...[0, 1, 2, 3, 4, 5].map(i => ({ partition: i % 3, value: `a-explicit-${i}` })),
          ...[0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(i => ({ key: `user-${i}`, value: `a-keyed-${i}` })),
        ],
      },
      { topic: b, messages: [0, 1, 2, 3].map(i => ({ key: `order-${i}`, value: `b-keyed-${i}` })) },
    ]
    const result = await producer.sendBatch({ acks: -1, topicMessages })
    assert.ok(result.every(m => m.errorCode === 0), JSON.stringify(result))

    // Where kafkajs's default partitioner (murmur2, as Java's) sends each keyed record.
    const partitioner = Partitioners.DefaultPartitioner()
    for (const { topic, messages } of topicMessages) {
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] })
      const partitionMetadata = metadata.topics[0].partitions
      const expected = new Map(partitionMetadata.map(p => [p.partitionId, []]))
      for (const m of messages) {
        const partition = m.partition ?? partitioner({ topic, partitionMetadata, message: m })
        expected.get(partition).push({ key: m.key ?? null, value: m.value })
      }
      // The acknowledged base offsets: each partition of this send started at 0.
      const acked = result.filter(r => r.topicName === topic)
      assert.deepEqual(
        acked.map(r => r.partition).sort(),
        [...expected].filter(([, list]) => list.length > 0).map(([p]) => p).sort()
      )
      assert.ok(acked.every(r => r.baseOffset === '0'), JSON.stringify(acked))

      const records = await spateConsume(broker, topic)
      for (const [partition, list] of expected) {
        const got = records
          .filter(r => r.partition === partition)
          .map(r => ({ offset: r.offset, key: r.key?.toString() ?? null, value: r.value.toString() }))
        assert.deepEqual(got, list.map((m, offset) => ({ offset, ...m })), `${topic} partition ${partition}`)
      }
    }
  })
})

describe('idempotent producer', () => {
  it('gets a producer id from InitProducerId and numbers its batches 0, n, ...', async () => {
    const topic = await createTopic('prod-idempotent')
    // Retries stay bounded so a broker problem fails the test instead of retrying forever
    // (kafkajs warns that this may weaken exactly-once; irrelevant here).
    const idem = kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 3 } })
    await idem.connect()
    try {
      const first = await idem.send({ topic, messages: [0, 1, 2].map(i => ({ key: `k${i}`, value: `first-${i}` })) })
      const second = await idem.send({ topic, messages: [0, 1].map(i => ({ key: `k${i}`, value: `second-${i}` })) })
      assert.deepEqual([first[0].baseOffset, second[0].baseOffset], ['0', '3'])
    } finally {
      await idem.disconnect()
    }

    const batches = await fetchBatches(broker, topic, 0)
    assert.equal(batches.length, 2)
    const [b1, b2] = batches
    assert.ok(b1.producerId >= 0, `producer id ${b1.producerId}`)
    assert.equal(b2.producerId, b1.producerId)
    assert.equal(b1.producerEpoch, b2.producerEpoch)
    assert.ok(b1.producerEpoch >= 0)
    assert.deepEqual([b1.baseSequence, b1.recordCount], [0, 3])
    assert.deepEqual([b2.baseSequence, b2.recordCount], [3, 2])

    const records = await spateConsume(broker, topic)
    assert.deepEqual(
      records.map(r => [r.offset, r.key.toString(), r.value.toString()]),
      [[0, 'k0', 'first-0'], [1, 'k1', 'first-1'], [2, 'k2', 'first-2'], [3, 'k0', 'second-0'], [4, 'k1', 'second-1']]
    )
  })

  it('two idempotent producers get different producer ids', async () => {
    const topic = await createTopic('prod-two-pids')
    for (const n of [1, 2]) {
      const p = kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 3 } })
      await p.connect()
      try {
        await p.send({ topic, messages: [{ value: `from-${n}` }] })
      } finally {
        await p.disconnect()
      }
    }
    const batches = await fetchBatches(broker, topic, 0)
    assert.equal(batches.length, 2)
    assert.notEqual(batches[0].producerId, batches[1].producerId)
    assert.deepEqual(batches.map(b => b.baseSequence), [0, 0])
  })

  it('a non-idempotent producer writes batches without a producer id, never taken as duplicates', async () => {
    const topic = await createTopic('prod-no-pid')
    await producer.send({ topic, acks: -1, messages: [{ value: 'plain' }] })
    await producer.send({ topic, acks: -1, messages: [{ value: 'plain' }] })
    // kafkajs writes producer id -1 with epoch 0 and base sequence 0 (Java clients write -1 for
    // all three); the broker stores the batch as written and must not deduplicate on it.
    const batches = await fetchBatches(broker, topic, 0)
    assert.deepEqual(
      batches.map(b => [b.baseOffset, b.producerId, b.producerEpoch, b.baseSequence]),
      [[0, -1, 0, 0], [1, -1, 0, 0]]
    )
  })
})

describe('large records', () => {
  const ONE_MIB = 1024 * 1024

  it('a 1 MiB record goes through once the topic max.message.bytes allows it', async () => {
    const topic = await createTopic('prod-big', { configEntries: [{ name: 'max.message.bytes', value: String(4 * ONE_MIB) }] })
    const value = crypto.randomBytes(ONE_MIB)
    const [meta] = await producer.send({ topic, acks: -1, messages: [{ key: 'big', value }, { key: 'small', value: 'after' }] })
    assert.deepEqual([meta.errorCode, meta.baseOffset], [0, '0'])

    const records = await spateConsume(broker, topic)
    assert.equal(records.length, 2)
    assert.equal(records[0].key.toString(), 'big')
    assert.equal(records[0].value.length, ONE_MIB)
    assert.ok(records[0].value.equals(value), '1 MiB value differs after the round trip')
    assert.equal(records[1].value.toString(), 'after')
  })

  it('a 1 MiB record is refused with MESSAGE_TOO_LARGE under the default max.message.bytes', async () => {
    const topic = await createTopic('prod-too-big')
    await rejectsWithType(
      producer.send({ topic, acks: -1, messages: [{ value: crypto.randomBytes(ONE_MIB) }] }),
      'MESSAGE_TOO_LARGE'
    )
    const [offsets] = await admin.fetchTopicOffsets(topic)
    assert.equal(offsets.high, '0')
  })
})
