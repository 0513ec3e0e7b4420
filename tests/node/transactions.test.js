'use strict'
// kafkajs transactions against `spate serve`: a transactional producer (InitProducerId with a
// transactional id, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn) commits and
// aborts; kafkajs consumers read with read_committed (their default) and read_uncommitted; a
// raw Fetch shows the transaction markers and the last stable offset; consume-transform-produce
// with sendOffsets leaves every input record exactly once in the output; a second producer with
// the same transactional id fences the first.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')

const { startBroker } = require('./lib/broker')
const { kafkaFor, uniqueTopic } = require('./lib/clients')
const { assertNoCrashes, startConsumer, uniqueGroup } = require('./lib/consumers')
const { errorTypes } = require('./lib/errors')
const { fetchBatches, fetchOnce, READ_COMMITTED } = require('./lib/raw_fetch')
const { waitUntil } = require('./lib/wait')

let broker
let kafka
let admin
let plain // a non-transactional producer
const clients = [] // producers and consumers still connected, disconnected in after()

before(async () => {
  broker = await startBroker()
  kafka = kafkaFor(broker, { clientId: 'kafkajs-transactions-tests' })
  admin = kafka.admin()
  await admin.connect()
  plain = kafka.producer()
  await plain.connect()
})

after(async () => {
  await Promise.all(clients.map(c => c.disconnect()))
  await plain?.disconnect()
  await admin?.disconnect()
  await broker?.stop()
})

async function createTopic(prefix, numPartitions = 1) {
  const topic = uniqueTopic(prefix)
  const created = await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions }] })
  assert.equal(created, true)
  return topic
}

// Retries stay bounded so a broker problem fails the test instead of retrying forever.
async function transactionalProducer(transactionalId = `txn-${crypto.randomBytes(4).toString('hex')}`) {
  const producer = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1, retry: { retries: 3 } })
  await producer.connect()
  clients.push(producer)
  return producer
}

async function disconnect(client) {
  await client.disconnect()
  clients.splice(clients.indexOf(client), 1)
}

// A consumer in a new group reading `topics` from the beginning; `got` collects
// { topic, partition, offset, value } and `fetches` counts Fetch answers.
async function reader(topics, { readUncommitted = false } = {}) {
  const got = []
  const member = await startConsumer(kafka, {
    groupId: uniqueGroup(readUncommitted ? 'txn-uncommitted' : 'txn-committed'),
    topics,
    readUncommitted,
    run: { eachMessage: async ({ topic, partition, message }) => {
      got.push({ topic, partition, offset: Number(message.offset), value: message.value.toString() })
    } },
  })
  let fetches = 0
  member.consumer.on(member.consumer.events.FETCH, () => { fetches++ })
  clients.push(member.consumer)
  return Object.assign(member, { got, fetches: () => fetches })
}

function valuesIn(got, partition) {
  return got.filter(r => r.partition === partition).sort((a, b) => a.offset - b.offset).map(r => r.value)
}

describe('commit and abort', () => {
  it('read_committed consumers see committed records only; read_uncommitted ones see all', async () => {
    const topic = await createTopic('txn-basic', 2)
    const producer = await transactionalProducer()
    const both = prefix => [0, 1].map(partition => ({ partition, key: `k${partition}`, value: `${prefix}-p${partition}` }))

    await plain.send({ topic, acks: -1, messages: both('plain-before') })
    const committed1 = await producer.transaction()
    await committed1.send({ topic, messages: both('commit-1') })
    await committed1.send({ topic, messages: both('commit-1b') })
    await committed1.commit()
    const aborted = await producer.transaction()
    await aborted.send({ topic, messages: both('abort') })
    await aborted.abort()
    const committed2 = await producer.transaction()
    await committed2.send({ topic, messages: both('commit-2') })
    await committed2.commit()
    await plain.send({ topic, acks: -1, messages: both('plain-after') })

    const [committed, uncommitted] = await Promise.all([reader([topic]), reader([topic], { readUncommitted: true })])
    // plain-after is the last record of each partition: once both are read, so is everything.
    const readToEnd = m => [0, 1].every(p => m.got.some(r => r.partition === p && r.value === `plain-after-p${p}`))
    await waitUntil(() => readToEnd(committed) && readToEnd(uncommitted), { what: 'both consumers reading to plain-after' })
    assertNoCrashes(committed, uncommitted)

    for (const p of [0, 1]) {
      assert.deepEqual(valuesIn(committed.got, p),
        ['plain-before', 'commit-1', 'commit-1b', 'commit-2', 'plain-after'].map(v => `${v}-p${p}`), `read_committed, partition ${p}`)
      assert.deepEqual(valuesIn(uncommitted.got, p),
        ['plain-before', 'commit-1', 'commit-1b', 'abort', 'commit-2', 'plain-after'].map(v => `${v}-p${p}`), `read_uncommitted, partition ${p}`)
    }

    // What the broker stored: one batch per send, a marker after each transaction, and
    // offsets that count the markers (plain 0, commit-1 1, commit-1b 2, COMMIT 3, abort 4, ABORT 5, ...).
    for (const p of [0, 1]) {
      const batches = await fetchBatches(broker, topic, p)
      assert.deepEqual(batches.map(b => [b.baseOffset, b.transactional, b.control, b.controlType]), [
        [0, false, false, null],
        [1, true, false, null],
        [2, true, false, null],
        [3, true, true, 'COMMIT'],
        [4, true, false, null],
        [5, true, true, 'ABORT'],
        [6, true, false, null],
        [7, true, true, 'COMMIT'],
        [8, false, false, null],
      ], `stored batches of partition ${p}`)
      const txnBatches = batches.filter(b => b.transactional)
      assert.equal(new Set(txnBatches.map(b => b.producerId)).size, 1, 'one producer id for every transactional batch')
      assert.ok(txnBatches[0].producerId >= 0)
      assert.deepEqual(committed.got.filter(r => r.partition === p).map(r => r.offset).sort((a, b) => a - b), [0, 1, 2, 6, 8])
      // A read_committed Fetch lists the aborted transaction so the client can drop its records.
      const answer = await fetchOnce(broker, topic, p, 0, { isolationLevel: READ_COMMITTED })
      assert.deepEqual([answer.highWatermark, answer.lastStableOffset], [9, 9])
      assert.deepEqual(answer.abortedTransactions, [{ producerId: txnBatches[0].producerId, firstOffset: 4 }])
    }
  })

  it('an open transaction holds read_committed consumers at the last stable offset until it commits', async () => {
    const topic = await createTopic('txn-open')
    const producer = await transactionalProducer()
    await plain.send({ topic, acks: -1, messages: [{ value: 'before' }] })
    const txn = await producer.transaction()
    await txn.send({ topic, messages: [{ value: 'in-txn' }] })
    // A non-transactional record after the open transaction is not stable either.
    await plain.send({ topic, acks: -1, messages: [{ value: 'after-open' }] })

    const open = await fetchOnce(broker, topic, 0, 0, { isolationLevel: READ_COMMITTED })
    assert.deepEqual([open.highWatermark, open.lastStableOffset], [3, 1])
    const [committed, uncommitted] = await Promise.all([reader([topic]), reader([topic], { readUncommitted: true })])
    await waitUntil(() => uncommitted.got.length >= 3, { what: 'read_uncommitted reading all three records' })
    // Read_committed got `before` and then Fetch answers that stop at the last stable offset.
    await waitUntil(() => committed.got.length >= 1, { what: 'read_committed reading `before`' })
    const fetchesBefore = committed.fetches()
    await waitUntil(() => committed.fetches() >= fetchesBefore + 3, { what: 'three more Fetch answers to read_committed' })
    assert.deepEqual(committed.got.map(r => r.value), ['before'])
    assert.deepEqual(uncommitted.got.map(r => r.value), ['before', 'in-txn', 'after-open'])

    await txn.commit()
    await waitUntil(() => committed.got.length >= 3, { what: 'read_committed reading past the committed transaction' })
    assert.deepEqual(committed.got.map(r => [r.offset, r.value]), [[0, 'before'], [1, 'in-txn'], [2, 'after-open']])
    const closed = await fetchOnce(broker, topic, 0, 0, { isolationLevel: READ_COMMITTED })
    assert.deepEqual([closed.highWatermark, closed.lastStableOffset], [4, 4]) // 3: the COMMIT marker
    assertNoCrashes(committed, uncommitted)
  })
})

describe('offsets in transactions', () => {
  async function groupOffsets(groupId, topic) {
    const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] })
    return entry.partitions.sort((a, b) => a.partition - b.partition).map(p => Number(p.offset))
  }

  it('sendOffsets commits a group offset with the transaction; abort discards it', async () => {
    const input = await createTopic('txn-offsets-in', 2)
    const output = await createTopic('txn-offsets-out')
    const groupId = uniqueGroup('txn-offsets')
    const producer = await transactionalProducer()

    const first = await producer.transaction()
    await first.send({ topic: output, messages: [{ value: 'out-1' }] })
    await first.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset: '5' }, { partition: 1, offset: '2' }] }] })
    // Not visible before the commit.
    assert.deepEqual(await groupOffsets(groupId, input), [-1, -1])
    await first.commit()
    assert.deepEqual(await groupOffsets(groupId, input), [5, 2])

    const second = await producer.transaction()
    await second.send({ topic: output, messages: [{ value: 'out-2' }] })
    await second.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset: '9' }] }] })
    await second.abort()
    assert.deepEqual(await groupOffsets(groupId, input), [5, 2])
  })

  it('consume-transform-produce with sendOffsets: each input record once in the output, an abort retried', async () => {
    const input = await createTopic('txn-ctp-in', 2)
    const output = await createTopic('txn-ctp-out', 2)
    const groupId = uniqueGroup('txn-ctp')
    const inputs = []
    for (let i = 0; i < 20; i++) inputs.push({ partition: i % 2, key: `k${i}`, value: `in-${i}` })
    await plain.send({ topic: input, acks: -1, messages: inputs })

    const producer = await transactionalProducer()
    const abortedOnce = new Set() // partitions whose first transaction was aborted and retried
    // `transformer` is set before the first batch arrives: run() resolves before any Fetch answer.
    const transformer = await startConsumer(kafka, {
      groupId,
      topics: [input],
      run: {
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset }) => {
          const txn = await producer.transaction()
          await txn.send({
            topic: output,
            messages: batch.messages.map(m => ({ partition: batch.partition, key: m.key, value: `out-${m.value}` })),
          })
          const next = String(Number(batch.lastOffset()) + 1)
          await txn.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: batch.partition, offset: next }] }] })
          if (!abortedOnce.has(batch.partition)) {
            abortedOnce.add(batch.partition)
            await txn.abort()
            transformer.consumer.seek({ topic: input, partition: batch.partition, offset: batch.firstOffset() })
            return
          }
          await txn.commit()
          resolveOffset(batch.lastOffset())
        },
      },
    })
    clients.push(transformer.consumer)
    await waitUntil(async () => (await groupOffsets(groupId, input)).join() === '10,10', {
      what: 'the transformer committing offsets 10,10 through its transactions',
    })
    assertNoCrashes(transformer)
    assert.deepEqual([...abortedOnce].sort(), [0, 1])

    const [committed, uncommitted] = await Promise.all([reader([output]), reader([output], { readUncommitted: true })])
    await waitUntil(() => committed.got.length >= 20, { what: 'read_committed reading 20 output records' })
    // Read_uncommitted also sees the aborted first attempts, before the committed copies.
    await waitUntil(() => [0, 1].every(p => uncommitted.got.some(r => r.partition === p && r.value === `out-in-${18 + p}`)),
      { what: 'read_uncommitted reading to the last output record' })
    for (const p of [0, 1]) {
      const expected = inputs.filter(m => m.partition === p).map(m => `out-${m.value}`)
      assert.deepEqual(valuesIn(committed.got, p), expected, `read_committed output, partition ${p}`)
      const all = valuesIn(uncommitted.got, p)
      assert.ok(all.length > expected.length, `read_uncommitted sees the aborted attempt in partition ${p}`)
      assert.deepEqual(all.slice(all.length - expected.length), expected)
    }
    assertNoCrashes(committed, uncommitted)
  })
})

describe('fencing', () => {
  // A zombie producer with an open transaction, and a new producer with the same transactional
  // id whose InitProducerId bumps the epoch and aborts the zombie's transaction. kafkajs sends
  // that InitProducerId on the first transaction(): connect() of an idempotent transactional
  // producer asks for a producer id without the transactional id.
  async function zombieAndSuccessor(topic) {
    const transactionalId = `txn-fence-${crypto.randomBytes(4).toString('hex')}`
    const zombie = await transactionalProducer(transactionalId)
    const stale = await zombie.transaction()
    await stale.send({ topic, messages: [{ value: 'zombie' }] })
    const successor = await transactionalProducer(transactionalId)
    const txn = await successor.transaction()
    return { stale, txn }
  }

  it('a second producer with the same transactional id aborts the open transaction of the first', async () => {
    const topic = await createTopic('txn-fence')
    const { txn } = await zombieAndSuccessor(topic)
    await txn.send({ topic, messages: [{ value: 'fresh' }] })
    await txn.commit()

    const committed = await reader([topic])
    await waitUntil(() => committed.got.some(r => r.value === 'fresh'), { what: 'read_committed reading `fresh`' })
    assert.deepEqual(committed.got.map(r => r.value), ['fresh'])
    const batches = await fetchBatches(broker, topic, 0)
    assert.deepEqual(batches.map(b => [b.baseOffset, b.control, b.controlType]),
      [[0, false, null], [1, true, 'ABORT'], [2, false, null], [3, true, 'COMMIT']])
    assert.ok(batches[1].producerEpoch > batches[0].producerEpoch, 'the abort marker carries the bumped epoch')
    assertNoCrashes(committed)
  })

  it('the fenced producer gets INVALID_PRODUCER_EPOCH from AddOffsetsToTxn, AddPartitionsToTxn and EndTxn v1', async () => {
    const topic = await createTopic('txn-fenced')
    const other = await createTopic('txn-fenced-other')
    const { stale } = await zombieAndSuccessor(topic)
    // Kafka answers PRODUCER_FENCED as INVALID_PRODUCER_EPOCH to AddPartitionsToTxn,
    // AddOffsetsToTxn and EndTxn below v2 (KIP-588): kafkajs 2.2.4 speaks v1 and does not know
    // PRODUCER_FENCED (code 90), which it reports as KAFKAJS_UNKNOWN_ERROR_CODE.
    const attempts = {
      AddOffsetsToTxn: () => stale.sendOffsets({ consumerGroupId: uniqueGroup('txn-fenced'), topics: [{ topic, partitions: [{ partition: 0, offset: '1' }] }] }),
      AddPartitionsToTxn: () => stale.send({ topic: other, messages: [{ value: 'zombie-2' }] }),
      EndTxn: () => stale.commit(),
    }
    const got = {}
    const messages = {}
    for (const [api, attempt] of Object.entries(attempts)) {
      got[api] = await attempt().then(() => 'succeeded', err => {
        messages[api] = `${err.name}: ${err.message}`
        return errorTypes(err).join(',')
      })
    }
    assert.deepEqual(got, { AddOffsetsToTxn: 'INVALID_PRODUCER_EPOCH', AddPartitionsToTxn: 'INVALID_PRODUCER_EPOCH', EndTxn: 'INVALID_PRODUCER_EPOCH' },
      `kafkajs reported ${JSON.stringify(messages)}`)
  })
})
