'use strict'
// Which request versions kafkajs 2.2.4 picks against Spate's ApiVersions answer: the highest
// version both sides know. A range Spate stopped advertising would make kafkajs fall back (or
// fail) silently, so the negotiated versions are pinned here, read from kafkajs's own
// instrumentation events (`request`).

const { it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { ConfigResourceTypes } = require('kafkajs')

const { startBroker } = require('./lib/broker')
const { kafkaFor, uniqueTopic } = require('./lib/clients')

let broker

before(async () => {
  broker = await startBroker()
})

after(async () => {
  await broker?.stop()
})

it('kafkajs uses its newest version of every API it sends to Spate', async () => {
  const kafka = kafkaFor(broker, { clientId: 'kafkajs-versions' })
  const seen = new Map()
  const record = ({ payload }) => {
    const versions = seen.get(payload.apiName) || new Set()
    versions.add(payload.apiVersion)
    seen.set(payload.apiName, versions)
  }
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

  const negotiated = Object.fromEntries([...seen].map(([api, v]) => [api, [...v].sort()]))
  assert.deepEqual(negotiated, {
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
