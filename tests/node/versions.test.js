'use strict'
// Which request versions kafkajs 2.2.4 picks against Spate's ApiVersions answer: the highest
// version both sides know. A range Spate stopped advertising would make kafkajs fall back (or
// fail) silently, so the negotiated versions are pinned here, read from kafkajs's own
// instrumentation events (`request`): the admin and producer paths, then the consumer group and
// transaction paths.

const { it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { ConfigResourceTypes } = require('kafkajs')

const { startBroker } = require('./lib/broker')
const { kafkaFor, uniqueTopic } = require('./lib/clients')
const { FAST_GROUP, uniqueGroup } = require('./lib/consumers')
const { waitUntil } = require('./lib/wait')

let broker

before(async () => {
  broker = await startBroker()
})

after(async () => {
  await broker?.stop()
})

// The versions of every request seen by `record`, by kafkajs's API name.
function recorder() {
  const seen = new Map()
  const record = ({ payload }) => {
    const versions = seen.get(payload.apiName) || new Set()
    versions.add(payload.apiVersion)
    seen.set(payload.apiName, versions)
  }
  const negotiated = () => Object.fromEntries([...seen].map(([api, v]) => [api, [...v].sort()]))
  return { record, negotiated }
}

it('kafkajs uses its newest version of every API it sends to Spate', async () => {
  const kafka = kafkaFor(broker, { clientId: 'kafkajs-versions' })
  const { record, negotiated } = recorder()
  const admin = kafka.admin()
  const producer = kafka.producer()
  const idempotent = kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 3 } })
  admin.on(admin.events.REQUEST, record)
  producer.on(producer.events.REQUEST, record)
  idempotent.on(idempotent.events.REQUEST, record)
  await Promise.all([admin.connect(), producer.connect(), idempotent.connect()])
  try {
    const topic = uniqueTopic('versions')
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 2 }] })
    await admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] })
    await producer.send({ topic, acks: -1, messages: [{ value: 'plain' }] })
    await idempotent.send({ topic, messages: [{ value: 'idempotent' }] })
    await admin.fetchTopicOffsets(topic)
    await admin.fetchTopicOffsetsByTimestamp(topic, Date.now() - 60_000)
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '-1' }] })
    const resource = { type: ConfigResourceTypes.TOPIC, name: topic }
    await admin.describeConfigs({ includeSynonyms: false, resources: [resource] })
    await admin.alterConfigs({ resources: [{ ...resource, configEntries: [{ name: 'retention.ms', value: '3600000' }] }] })
    await admin.deleteTopics({ topics: [topic] })
  } finally {
    await Promise.all([admin.disconnect(), producer.disconnect(), idempotent.disconnect()])
  }

  assert.deepEqual(negotiated(), {
    ApiVersions: [2],
    Metadata: [6],
    CreateTopics: [3],
    CreatePartitions: [1],
    Produce: [7],
    InitProducerId: [1],
    ListOffsets: [3],
    DeleteRecords: [1],
    DescribeConfigs: [2],
    AlterConfigs: [1],
    DeleteTopics: [1],
  })
})

it('kafkajs uses its newest version of every group and transaction API', async () => {
  const kafka = kafkaFor(broker, { clientId: 'kafkajs-versions-groups' })
  const { record, negotiated } = recorder()
  const topic = uniqueTopic('versions-groups')
  const groupId = uniqueGroup('versions')
  const admin = kafka.admin()
  const txn = kafka.producer({ transactionalId: `versions-${groupId}`, idempotent: true, maxInFlightRequests: 1, retry: { retries: 3 } })
  const consumer = kafka.consumer({ ...FAST_GROUP, groupId })
  for (const client of [admin, txn, consumer]) client.on(client.events.REQUEST, record)
  await Promise.all([admin.connect(), txn.connect(), consumer.connect()])
  try {
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic }] })
    const committed = await txn.transaction()
    await committed.send({ topic, messages: [{ value: 'committed' }] })
    await committed.sendOffsets({ consumerGroupId: uniqueGroup('versions-txn'), topics: [{ topic, partitions: [{ partition: 0, offset: '1' }] }] })
    await committed.commit()
    const aborted = await txn.transaction()
    await aborted.send({ topic, messages: [{ value: 'aborted' }] })
    await aborted.abort()

    const got = []
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({ eachMessage: async ({ message }) => { got.push(message.value.toString()) } })
    // Stay in the group until it has committed and heartbeated.
    await waitUntil(() => got.length === 1 && negotiated().OffsetCommit && negotiated().Heartbeat, {
      what: 'the consumer reading, committing and heartbeating',
    })
    assert.deepEqual(got, ['committed'])
    await consumer.disconnect() // LeaveGroup
    await admin.fetchOffsets({ groupId, topics: [topic] })
    await admin.listGroups()
    await admin.describeGroups([groupId])
    await admin.deleteGroups([groupId])
  } finally {
    await Promise.all([admin.disconnect(), txn.disconnect(), consumer.disconnect()])
  }

  // kafkajs calls FindCoordinator "GroupCoordinator", for groups and transactions alike.
  assert.deepEqual(negotiated(), {
    ApiVersions: [2],
    Metadata: [6],
    CreateTopics: [3],
    GroupCoordinator: [2],
    InitProducerId: [1],
    AddPartitionsToTxn: [1],
    Produce: [7],
    AddOffsetsToTxn: [1],
    TxnOffsetCommit: [1],
    EndTxn: [1],
    JoinGroup: [5],
    SyncGroup: [3],
    OffsetFetch: [4],
    ListOffsets: [3],
    Fetch: [11],
    OffsetCommit: [5],
    Heartbeat: [3],
    LeaveGroup: [3],
    ListGroups: [2],
    DescribeGroups: [2],
    DeleteGroups: [1],
  })
})
