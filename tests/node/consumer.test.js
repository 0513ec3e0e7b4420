'use strict'
// kafkajs's consumer against `spate serve`: it always joins a group (FindCoordinator, JoinGroup,
// SyncGroup, Heartbeat, OffsetCommit/OffsetFetch, LeaveGroup) and fetches with Fetch v11. Reads
// everything back with eachMessage and eachBatch, balances a group, hands partitions over when a
// member leaves under continuous produce, resumes at committed offsets, and drives the group
// admin calls (fetchOffsets, resetOffsets, setOffsets, listGroups, describeGroups, deleteGroups).

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { setTimeout: delay } = require('node:timers/promises')
const { AssignerProtocol, CompressionTypes } = require('kafkajs')

const { startBroker } = require('./lib/broker')
const { kafkaFor, uniqueTopic } = require('./lib/clients')
const { assertNoCrashes, assigned, decodeMembers, startConsumer, uniqueGroup } = require('./lib/consumers')
const { rejectsWithType } = require('./lib/errors')
const { waitUntil } = require('./lib/wait')

let broker
let kafka
let admin
let producer
const running = [] // consumers still connected, disconnected in after()

before(async () => {
  broker = await startBroker()
  kafka = kafkaFor(broker, { clientId: 'kafkajs-consumer-tests' })
  admin = kafka.admin()
  await admin.connect()
  producer = kafka.producer()
  await producer.connect()
})

after(async () => {
  await Promise.all(running.map(m => m.consumer.disconnect()))
  await producer?.disconnect()
  await admin?.disconnect()
  await broker?.stop()
})

async function createTopic(prefix, numPartitions = 1) {
  const topic = uniqueTopic(prefix)
  const created = await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions }] })
  assert.equal(created, true)
  return topic
}

async function consume(options) {
  const member = await startConsumer(kafka, options)
  running.push(member)
  return member
}

async function stop(member) {
  await member.consumer.disconnect()
  running.splice(running.indexOf(member), 1)
}

// The committed offset of every partition of `topic` for `groupId`, as numbers (-1: none).
async function committed(groupId, topic) {
  const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] })
  assert.equal(entry.topic, topic)
  return entry.partitions
    .sort((a, b) => a.partition - b.partition)
    .map(p => Number(p.offset))
}

async function highWatermarks(topic) {
  const offsets = await admin.fetchTopicOffsets(topic)
  return offsets.sort((a, b) => a.partition - b.partition).map(p => Number(p.high))
}

// What kafkajs hands to eachMessage/eachBatch, as plain data: Buffers as strings (a repeated
// header name arrives as an array of Buffers).
function received(partition, message) {
  const text = b => (b === null || b === undefined ? null : b.toString('utf8'))
  const headers = Object.fromEntries(
    Object.entries(message.headers || {}).map(([name, v]) => [name, Array.isArray(v) ? v.map(text) : text(v)])
  )
  return { partition, offset: Number(message.offset), key: text(message.key), value: text(message.value), headers }
}

// The records of `messages` as a consumer should see them, given each partition started at 0.
function expectedRecords(messages, numPartitions) {
  const next = new Array(numPartitions).fill(0)
  return messages.map(m => ({
    partition: m.partition,
    offset: next[m.partition]++,
    key: m.key ?? null,
    value: m.value,
    headers: m.headers || {},
  }))
}

function byPartitionOffset(a, b) {
  return a.partition - b.partition || a.offset - b.offset
}

describe('reading a topic in a group', () => {
  it('eachMessage reads every record from the beginning: keys, values, headers, nulls, order', async () => {
    const topic = await createTopic('cons-each-message', 3)
    const messages = []
    for (let i = 0; i < 30; i++) {
      messages.push({ partition: i % 3, key: `key-${i}`, value: `value-${i}`, headers: { seq: String(i), src: 'kafkajs' } })
    }
    messages.push({ partition: 0, key: 'tombstone', value: null })
    messages.push({ partition: 1, key: null, value: 'no key' })
    messages.push({ partition: 2, key: 'hops', value: 'repeated', headers: { hop: ['a', 'b', 'c'] } })
    messages.push({ partition: 2, key: 'ünïcødé ✓', value: 'värde ✓', headers: { 'nåme ✓': 'välue ✓' } })
    await producer.send({ topic, acks: -1, messages })

    const groupId = uniqueGroup('cons-each-message')
    const got = []
    const member = await consume({
      groupId,
      topics: [topic],
      run: { eachMessage: async ({ topic: t, partition, message }) => {
        assert.equal(t, topic)
        got.push(received(partition, message))
      } },
    })
    await waitUntil(() => got.length >= messages.length, { what: `${messages.length} records by eachMessage` })
    assertNoCrashes(member)

    const expected = expectedRecords(messages, 3)
    assert.deepEqual([...got].sort(byPartitionOffset), expected.sort(byPartitionOffset))
    for (const partition of [0, 1, 2]) {
      const offsets = got.filter(r => r.partition === partition).map(r => r.offset)
      assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b), `delivery order in partition ${partition}`)
    }
    // Default autoCommit: the offsets after the last record are committed after each batch.
    assert.deepEqual(await highWatermarks(topic), [11, 11, 12])
    await waitUntil(async () => (await committed(groupId, topic)).join() === '11,11,12', {
      what: 'committed offsets 11,11,12',
    })
  })

  it('eachBatch gets whole batches with their high watermark, before and after it joined', async () => {
    const topic = await createTopic('cons-each-batch', 2)
    const before = [0, 1, 2, 3, 4, 5, 6, 7].map(i => ({ partition: i % 2, key: `k${i}`, value: `before-${i}`, headers: { n: String(i) } }))
    await producer.send({ topic, acks: -1, messages: before.slice(0, 4) })
    await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages: before.slice(4) })

    const groupId = uniqueGroup('cons-each-batch')
    const batches = []
    const member = await consume({
      groupId,
      topics: [topic],
      run: { eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
        batches.push({
          partition: batch.partition,
          highWatermark: Number(batch.highWatermark),
          firstOffset: Number(batch.firstOffset()),
          lastOffset: Number(batch.lastOffset()),
          records: batch.messages.map(m => received(batch.partition, m)),
        })
        for (const m of batch.messages) resolveOffset(m.offset)
        await heartbeat()
      } },
    })
    const count = () => batches.reduce((n, b) => n + b.records.length, 0)
    await waitUntil(() => count() >= before.length, { what: `${before.length} records by eachBatch` })
    // Records produced while the consumer waits in Fetch arrive too.
    const later = [0, 1, 2, 3].map(i => ({ partition: i % 2, key: `k${i}`, value: `after-${i}`, headers: { n: String(i) } }))
    await producer.send({ topic, acks: -1, messages: later })
    await waitUntil(() => count() >= before.length + later.length, { what: 'the records produced after the join' })
    assertNoCrashes(member)

    const all = batches.flatMap(b => b.records)
    assert.deepEqual(all.sort(byPartitionOffset), expectedRecords([...before, ...later], 2).sort(byPartitionOffset))
    for (const b of batches) {
      const offsets = b.records.map(r => r.offset)
      assert.deepEqual(offsets, offsets.map((_, i) => b.firstOffset + i), `offsets of a batch are consecutive: ${offsets}`)
      assert.equal(b.lastOffset, offsets[offsets.length - 1])
      assert.ok(b.highWatermark >= b.lastOffset + 1, `high watermark ${b.highWatermark} after offset ${b.lastOffset}`)
    }
    assert.deepEqual(await highWatermarks(topic), [6, 6])
    await waitUntil(async () => (await committed(groupId, topic)).join() === '6,6', { what: 'committed offsets 6,6' })
  })
})

describe('a group of three', () => {
  // One send of one record per partition every PRODUCE_PACE_MS while the group changes: a pace,
  // not a wait (nothing is waited for with it).
  const PRODUCE_PACE_MS = 20
  // Records read per partition before c leaves, and after the others took over.
  const ROUNDS = 10

  it('three members split six partitions; when one leaves the others take over and miss nothing', async t => {
    const topic = await createTopic('cons-group', 6)
    const groupId = uniqueGroup('cons-group')
    const consumed = [] // { member, partition, offset, value, at }
    const names = ['a', 'b', 'c']
    const members = await Promise.all(names.map(name => consume({
      groupId,
      topics: [topic],
      run: { eachMessage: async ({ partition, message }) => {
        consumed.push({ member: name, partition, offset: Number(message.offset), value: message.value.toString(), at: Date.now() })
      } },
    }).then(m => Object.assign(m, { name }))))
    // kafkajs's Kafka instance is shared, so every member reports the same client id; members
    // are told apart by the memberId of their GROUP_JOIN.
    const [a, b, c] = members

    // Balanced and complete: each member's latest GROUP_JOIN holds two partitions, together all
    // six; describeGroups (decoded with kafkajs's AssignerProtocol) says the same.
    const latest = () => members.map(m => assigned(m.lastJoin(), topic))
    await waitUntil(() => {
      const parts = latest()
      return parts.every(p => p.length === 2) && parts.flat().sort().join() === '0,1,2,3,4,5'
    }, { what: 'a balanced assignment in the GROUP_JOIN events', timeoutMs: 20_000 })
    const group = await waitUntil(async () => {
      const { groups: [g] } = await admin.describeGroups([groupId])
      return g.state === 'Stable' && g.members.length === 3 && g
    }, { what: 'describeGroups: Stable with three members' })
    assert.equal(group.protocolType, 'consumer')
    assert.equal(group.protocol, 'RoundRobinAssigner')
    const described = Object.fromEntries(decodeMembers(group, topic).map(m => [m.memberId, m.partitions]))
    assert.deepEqual(described, Object.fromEntries(members.map(m => [m.memberId(), assigned(m.lastJoin(), topic)])))

    // Continuous produce from here to the end of the test.
    const acked = []
    let producing = true
    const producerLoop = (async () => {
      for (let round = 0; producing; round++) {
        const messages = [0, 1, 2, 3, 4, 5].map(partition => ({ partition, value: `r${round}-p${partition}` }))
        await producer.send({ topic, acks: -1, messages })
        acked.push(...messages.map(m => m.value))
        await delay(PRODUCE_PACE_MS)
      }
    })()
    producerLoop.catch(() => {}) // awaited below; this only keeps an early failure from being unhandled

    // Every member reads from both of its partitions, a few rounds each.
    const readBy = (name, p) => consumed.filter(r => r.member === name && r.partition === p).length
    await waitUntil(() => members.every(m => assigned(m.lastJoin(), topic).every(p => readBy(m.name, p) >= ROUNDS)),
      { what: `each member reading ${ROUNDS} records of each of its partitions` })

    // c leaves (kafkajs commits what it processed, then sends LeaveGroup).
    const cPartitions = assigned(c.lastJoin(), topic)
    const leftAt = Date.now()
    await stop(c)
    const cLast = Object.fromEntries(cPartitions.map(p =>
      [p, Math.max(...consumed.filter(r => r.member === 'c' && r.partition === p).map(r => r.offset))]))

    // a and b rejoin and take all six partitions, three each.
    await waitUntil(() => [a, b].every(m => m.lastJoin().at >= leftAt) &&
      [a, b].map(m => assigned(m.lastJoin(), topic)).flat().sort().join() === '0,1,2,3,4,5',
    { what: 'a and b rejoining with all six partitions', timeoutMs: 20_000 })
    assert.deepEqual([a, b].map(m => assigned(m.lastJoin(), topic).length), [3, 3])
    // ... and read c's partitions past where c stopped, for a few rounds.
    await waitUntil(() => cPartitions.every(p =>
      consumed.filter(r => r.member !== 'c' && r.partition === p && r.offset > cLast[p]).length >= ROUNDS),
    { what: `a or b reading ${ROUNDS} records of each of c's partitions ${cPartitions}` })

    producing = false
    await producerLoop
    const high = await highWatermarks(topic)
    assert.equal(high.reduce((x, y) => x + y, 0), acked.length, 'every acknowledged record is in the log once')

    // Everything read at least once, and committed up to the end.
    const offsetsOf = p => new Set(consumed.filter(r => r.partition === p).map(r => r.offset))
    await waitUntil(() => high.every((h, p) => offsetsOf(p).size === h), { what: `every record up to ${high} read` })
    await waitUntil(async () => (await committed(groupId, topic)).join() === high.join(), { what: `committed offsets ${high}` })
    assertNoCrashes(...members)

    // No gaps: in every partition each offset below the high watermark was read (and no other).
    high.forEach((h, p) => {
      const offsets = [...offsetsOf(p)].sort((x, y) => x - y)
      assert.deepEqual(offsets, Array.from({ length: h }, (_, i) => i), `offsets read in partition ${p}`)
    })
    const values = new Set(consumed.map(r => r.value))
    const missing = acked.filter(v => !values.has(v))
    assert.deepEqual(missing, [], 'acknowledged records never read')
    // c committed what it processed before leaving: its partitions' new owners start right after.
    for (const p of cPartitions) {
      const next = consumed.filter(r => r.member !== 'c' && r.partition === p && r.at >= leftAt)
      assert.equal(next[0].offset, cLast[p] + 1, `first offset read by ${next[0].member} in c's partition ${p}`)
    }
    const { groups: [settled] } = await admin.describeGroups([groupId])
    assert.deepEqual([settled.state, settled.members.length], ['Stable', 2])
    const duplicates = consumed.length - values.size
    t.diagnostic(`${acked.length} records produced, ${consumed.length} read, ${duplicates} read twice`)
  })
})

describe('committed offsets and group admin', () => {
  async function produceTo(topic, partitions, count) {
    const messages = []
    for (const partition of partitions) {
      for (let i = 0; i < count; i++) messages.push({ partition, key: `p${partition}`, value: `p${partition}-${i}` })
    }
    await producer.send({ topic, acks: -1, messages })
  }

  // Starts a consumer and returns it with the records it reads: [{ partition, offset }].
  async function reader(groupId, topic, run = {}) {
    const got = []
    const member = await consume({
      groupId,
      topics: [topic],
      run: { ...run, eachMessage: async ({ partition, message }) => { got.push({ partition, offset: Number(message.offset) }) } },
    })
    return Object.assign(member, { got })
  }

  function firstOffsets(got, partitions) {
    return partitions.map(p => got.find(r => r.partition === p)?.offset)
  }

  it('a consumer that reconnects with the same groupId resumes at the committed offset', async () => {
    const topic = await createTopic('cons-resume', 2)
    const groupId = uniqueGroup('cons-resume')
    await produceTo(topic, [0, 1], 10)

    // Read everything without committing, then commit part of it by hand.
    const first = await reader(groupId, topic, { autoCommit: false })
    await waitUntil(() => first.got.length >= 20, { what: 'the first consumer reading 20 records' })
    assert.deepEqual(await committed(groupId, topic), [-1, -1])
    await first.consumer.commitOffsets([{ topic, partition: 0, offset: '4' }, { topic, partition: 1, offset: '7' }])
    assert.deepEqual(await committed(groupId, topic), [4, 7])
    assertNoCrashes(first)
    await stop(first)
    assert.deepEqual(await committed(groupId, topic), [4, 7], 'committed offsets after the consumer left')

    // fromBeginning only applies without a committed offset: the second consumer starts at 4 and 7.
    const second = await reader(groupId, topic)
    await waitUntil(() => second.got.length >= 6 + 3, { what: 'the second consumer reading 9 records' })
    const sorted = [...second.got].sort(byPartitionOffset)
    assert.deepEqual(sorted.map(r => `${r.partition}:${r.offset}`),
      ['0:4', '0:5', '0:6', '0:7', '0:8', '0:9', '1:7', '1:8', '1:9'])
    assert.deepEqual(firstOffsets(second.got, [0, 1]), [4, 7])
    await waitUntil(async () => (await committed(groupId, topic)).join() === '10,10', { what: 'committed offsets 10,10' })
    assertNoCrashes(second)
    await stop(second)
  })

  it('setOffsets and resetOffsets move empty groups; the next consumer starts there', async () => {
    const topic = await createTopic('cons-set-offsets', 2)
    await produceTo(topic, [0, 1], 10)
    // kafkajs's setOffsets (and resetOffsets, which calls it) joins the group with a paused
    // consumer, seeks, and leaves; the paused consumer sleeps its maxWaitTimeInMs (5 s, not
    // settable through the admin client) before it gets there. The three groups run at once.
    const fresh = uniqueGroup('cons-set-fresh') // nobody joined it yet
    const [toEarliest, toLatest] = [uniqueGroup('cons-reset-earliest'), uniqueGroup('cons-reset-latest')]
    for (const groupId of [toEarliest, toLatest]) {
      const done = await reader(groupId, topic)
      await waitUntil(async () => (await committed(groupId, topic)).join() === '10,10', { what: `${groupId} committed 10,10` })
      if (groupId === toEarliest) {
        // kafkajs refuses to move the offsets of a running group (it asks DescribeGroups).
        await assert.rejects(
          admin.resetOffsets({ groupId, topic, earliest: true }),
          /The consumer group must have no running instances, current state: Stable/
        )
      }
      assertNoCrashes(done)
      await stop(done)
    }

    await Promise.all([
      admin.setOffsets({ groupId: fresh, topic, partitions: [{ partition: 0, offset: '3' }, { partition: 1, offset: '8' }] }),
      admin.resetOffsets({ groupId: toEarliest, topic, earliest: true }),
      admin.resetOffsets({ groupId: toLatest, topic }),
    ])
    assert.deepEqual(await committed(fresh, topic), [3, 8])
    // resetOffsets commits kafkajs's sentinels, -2 (earliest) and -1 (latest), as offsets; Kafka
    // stores them as given, and a kafkajs consumer treats a negative committed offset as none
    // and falls back to its own fromBeginning.
    assert.deepEqual(await committed(toEarliest, topic), [-2, -2])
    assert.deepEqual(await committed(toLatest, topic), [-1, -1])

    const [fromSet, fromEarliest] = await Promise.all([reader(fresh, topic), reader(toEarliest, topic)])
    await waitUntil(() => fromSet.got.length >= 7 + 2, { what: 'a consumer reading from offsets 3 and 8' })
    await waitUntil(() => fromEarliest.got.length >= 20, { what: 'a consumer reading from offset 0 again' })
    assert.deepEqual(firstOffsets(fromSet.got, [0, 1]), [3, 8])
    assert.deepEqual(firstOffsets(fromEarliest.got, [0, 1]), [0, 0])
    assert.equal(fromSet.got.length, 9)
    await waitUntil(async () => (await committed(fresh, topic)).join() === '10,10', { what: 'committed offsets 10,10' })
    assertNoCrashes(fromSet, fromEarliest)
    await Promise.all([stop(fromSet), stop(fromEarliest)])
  })

  it('listGroups and describeGroups show a running group, an empty one and an unknown one', async () => {
    const topic = await createTopic('cons-describe', 2)
    const groupId = uniqueGroup('cons-describe')
    await produceTo(topic, [0, 1], 1)
    const member = await reader(groupId, topic)
    await waitUntil(() => member.got.length >= 2, { what: 'the consumer reading 2 records' })

    const { groups: listed } = await admin.listGroups()
    assert.deepEqual(listed.filter(g => g.groupId === groupId), [{ groupId, protocolType: 'consumer' }])
    const { groups: [running] } = await admin.describeGroups([groupId])
    assert.equal(running.errorCode, 0)
    assert.deepEqual([running.groupId, running.state, running.protocolType, running.protocol],
      [groupId, 'Stable', 'consumer', 'RoundRobinAssigner'])
    assert.equal(running.members.length, 1)
    const [m] = running.members
    assert.equal(m.memberId, member.memberId())
    assert.equal(m.clientId, 'kafkajs-consumer-tests')
    assert.ok(m.clientHost.includes('127.0.0.1'), `client host ${m.clientHost}`)
    assert.deepEqual(AssignerProtocol.MemberMetadata.decode(m.memberMetadata).topics, [topic])
    assert.deepEqual(decodeMembers(running, topic)[0].partitions, [0, 1])
    assertNoCrashes(member)
    await stop(member)

    const { groups: [empty] } = await admin.describeGroups([groupId])
    assert.deepEqual([empty.state, empty.members, empty.errorCode], ['Empty', [], 0])
    assert.ok((await admin.listGroups()).groups.some(g => g.groupId === groupId), 'an empty group with offsets is listed')

    const unknown = uniqueGroup('cons-unknown')
    const { groups: [dead] } = await admin.describeGroups([unknown])
    assert.deepEqual([dead.groupId, dead.state, dead.members, dead.errorCode], [unknown, 'Dead', [], 0])
  })

  it('deleteGroups removes an empty group and its offsets; a running or unknown group is refused', async () => {
    const topic = await createTopic('cons-delete', 1)
    const groupId = uniqueGroup('cons-delete')
    await produceTo(topic, [0], 3)
    const member = await reader(groupId, topic)
    await waitUntil(async () => (await committed(groupId, topic)).join() === '3', { what: 'committed offset 3' })

    await rejectsWithType(admin.deleteGroups([groupId]), 'NON_EMPTY_GROUP')
    assertNoCrashes(member)
    await stop(member)

    assert.deepEqual(await admin.deleteGroups([groupId]), [{ groupId, errorCode: 0 }])
    assert.ok(!(await admin.listGroups()).groups.some(g => g.groupId === groupId), 'deleted group still listed')
    assert.deepEqual(await committed(groupId, topic), [-1])
    const { groups: [gone] } = await admin.describeGroups([groupId])
    assert.equal(gone.state, 'Dead')

    await rejectsWithType(admin.deleteGroups([uniqueGroup('cons-never')]), 'GROUP_ID_NOT_FOUND')
  })
})
