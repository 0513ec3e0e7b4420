'use strict'
// kafkajs's admin client against `spate serve`. kafkajs 2.2.4 speaks old versions (Metadata v6,
// CreateTopics v3, DeleteTopics v1, CreatePartitions v1, DescribeConfigs v2, AlterConfigs v1,
// ListOffsets v3, DeleteRecords v1), so this is where version handling shows.
//
// The broker runs with --auto-create-topics false: Metadata for an unknown topic must answer
// UNKNOWN_TOPIC_OR_PARTITION instead of creating it.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { ConfigResourceTypes } = require('kafkajs')

const { startBroker } = require('./lib/broker')
const { kafkaFor, uniqueTopic } = require('./lib/clients')
const { errorTypes, rejectsWithType } = require('./lib/errors')
const { spateConsume } = require('./lib/readback')

let broker
let kafka
let admin
let producer

before(async () => {
  broker = await startBroker({ args: ['--auto-create-topics', 'false'] })
  kafka = kafkaFor(broker, { clientId: 'kafkajs-admin-tests' })
  admin = kafka.admin()
  await admin.connect()
  producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
})

after(async () => {
  await producer?.disconnect()
  await admin?.disconnect()
  await broker?.stop()
})

async function topicConfig(topic, names) {
  const { resources } = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: names }],
  })
  assert.equal(resources.length, 1)
  assert.equal(resources[0].errorCode, 0, resources[0].errorMessage)
  return Object.fromEntries(resources[0].configEntries.map(e => [e.configName, e]))
}

function partitionIds(metadata, topic) {
  const t = metadata.topics.find(x => x.name === topic)
  assert.ok(t, `topic ${topic} missing from metadata`)
  return t.partitions.map(p => p.partitionId).sort((a, b) => a - b)
}

describe('topics', () => {
  it('createTopics with numPartitions and configEntries, seen by listTopics, metadata and describeConfigs', async () => {
    const topic = uniqueTopic('admin-create')
    const created = await admin.createTopics({
      waitForLeaders: true,
      topics: [{
        topic,
        numPartitions: 3,
        replicationFactor: 1,
        configEntries: [
          { name: 'retention.ms', value: '3600000' },
          { name: 'cleanup.policy', value: 'compact' },
        ],
      }],
    })
    assert.equal(created, true)

    assert.ok((await admin.listTopics()).includes(topic))

    const metadata = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.deepEqual(partitionIds(metadata, topic), [0, 1, 2])
    for (const p of metadata.topics[0].partitions) {
      assert.equal(p.partitionErrorCode, 0)
      assert.equal(p.leader, 1)
      assert.deepEqual(p.replicas, [1])
      assert.deepEqual(p.isr, [1])
    }

    const config = await topicConfig(topic, ['retention.ms', 'cleanup.policy'])
    assert.equal(config['retention.ms'].configValue, '3600000')
    assert.equal(config['retention.ms'].isDefault, false)
    assert.equal(config['cleanup.policy'].configValue, 'compact')
  })

  it('createTopics of an existing topic resolves false, and reports TOPIC_ALREADY_EXISTS next to other errors', async () => {
    const topic = uniqueTopic('admin-exists')
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] }), true)
    // kafkajs turns an all-TOPIC_ALREADY_EXISTS answer into `false`...
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] }), false)
    // ...and throws the aggregate, with each topic's type, when another error is in it.
    const err = await rejectsWithType(
      admin.createTopics({ topics: [{ topic, numPartitions: 1 }, { topic: 'bad/name', numPartitions: 1 }] }),
      'TOPIC_ALREADY_EXISTS'
    )
    assert.equal(err.name, 'KafkaJSAggregateError')
    assert.ok(errorTypes(err).includes('INVALID_TOPIC_EXCEPTION'), JSON.stringify(errorTypes(err)))
  })

  it('createTopics with an invalid name fails with INVALID_TOPIC_EXCEPTION', async () => {
    for (const topic of ['has space', 'slash/topic', '.', '..', 'x'.repeat(250)]) {
      await rejectsWithType(admin.createTopics({ topics: [{ topic, numPartitions: 1 }] }), 'INVALID_TOPIC_EXCEPTION')
      assert.ok(!(await admin.listTopics()).includes(topic), `${topic} was created`)
    }
  })

  it('createTopics with numPartitions 0 fails with INVALID_PARTITIONS', async () => {
    const topic = uniqueTopic('admin-zero')
    await rejectsWithType(admin.createTopics({ topics: [{ topic, numPartitions: 0 }] }), 'INVALID_PARTITIONS')
  })

  it('createTopics with an unknown config fails with INVALID_CONFIG', async () => {
    const topic = uniqueTopic('admin-badconfig')
    await rejectsWithType(
      admin.createTopics({ topics: [{ topic, configEntries: [{ name: 'no.such.config', value: '1' }] }] }),
      'INVALID_CONFIG'
    )
    assert.ok(!(await admin.listTopics()).includes(topic))
  })

  it('fetchTopicMetadata of an unknown topic fails with UNKNOWN_TOPIC_OR_PARTITION', async () => {
    await rejectsWithType(
      admin.fetchTopicMetadata({ topics: [uniqueTopic('admin-missing')] }),
      'UNKNOWN_TOPIC_OR_PARTITION'
    )
  })

  it('createPartitions grows a topic, and the new partition takes records', async () => {
    const topic = uniqueTopic('admin-grow')
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1 }] })
    await admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] })
    assert.deepEqual(partitionIds(await admin.fetchTopicMetadata({ topics: [topic] }), topic), [0, 1, 2])

    const [meta] = await producer.send({ topic, acks: -1, messages: [{ partition: 2, value: 'in-new-partition' }] })
    assert.equal(meta.partition, 2)
    assert.equal(meta.errorCode, 0)
    const offsets = await admin.fetchTopicOffsets(topic)
    assert.deepEqual(
      offsets.map(o => [o.partition, o.low, o.high]).sort((a, b) => a[0] - b[0]),
      [[0, '0', '0'], [1, '0', '0'], [2, '0', '1']]
    )
  })

  it('createPartitions refuses to shrink with INVALID_PARTITIONS', async () => {
    const topic = uniqueTopic('admin-shrink')
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 3 }] })
    await rejectsWithType(admin.createPartitions({ topicPartitions: [{ topic, count: 2 }] }), 'INVALID_PARTITIONS')
    assert.deepEqual(partitionIds(await admin.fetchTopicMetadata({ topics: [topic] }), topic), [0, 1, 2])
  })

  it('createPartitions of an unknown topic fails with UNKNOWN_TOPIC_OR_PARTITION', async () => {
    await rejectsWithType(
      admin.createPartitions({ topicPartitions: [{ topic: uniqueTopic('admin-nogrow'), count: 2 }] }),
      'UNKNOWN_TOPIC_OR_PARTITION'
    )
  })

  it('deleteTopics removes the topic and its data; recreating it starts empty', async () => {
    const topic = uniqueTopic('admin-delete')
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 2 }] })
    await producer.send({ topic, acks: -1, messages: [{ partition: 0, value: 'a' }, { partition: 1, value: 'b' }] })

    await admin.deleteTopics({ topics: [topic] })
    assert.ok(!(await admin.listTopics()).includes(topic))
    await rejectsWithType(admin.fetchTopicMetadata({ topics: [topic] }), 'UNKNOWN_TOPIC_OR_PARTITION')

    assert.equal(await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1 }] }), true)
    assert.deepEqual(partitionIds(await admin.fetchTopicMetadata({ topics: [topic] }), topic), [0])
    assert.deepEqual(
      (await admin.fetchTopicOffsets(topic)).map(o => [o.partition, o.low, o.high]),
      [[0, '0', '0']]
    )
    await producer.send({ topic, acks: -1, messages: [{ value: 'after-recreate' }] })
    const records = await spateConsume(broker, topic)
    assert.deepEqual(records.map(r => [r.partition, r.offset, r.value.toString()]), [[0, 0, 'after-recreate']])
  })

  it('deleteTopics of an unknown topic fails with UNKNOWN_TOPIC_OR_PARTITION', async () => {
    await rejectsWithType(admin.deleteTopics({ topics: [uniqueTopic('admin-nodelete')] }), 'UNKNOWN_TOPIC_OR_PARTITION')
  })
})

describe('configs', () => {
  it('describeConfigs shows defaults; alterConfigs replaces the overrides (Kafka semantics) and reads back', async () => {
    const topic = uniqueTopic('admin-configs')
    await admin.createTopics({
      topics: [{
        topic,
        configEntries: [
          { name: 'retention.ms', value: '3600000' },
          { name: 'max.message.bytes', value: '2097152' },
        ],
      }],
    })
    const names = ['retention.ms', 'max.message.bytes', 'cleanup.policy']
    let config = await topicConfig(topic, names)
    assert.equal(config['retention.ms'].configValue, '3600000')
    assert.equal(config['max.message.bytes'].configValue, '2097152')
    assert.equal(config['cleanup.policy'].configValue, 'delete')
    assert.equal(config['cleanup.policy'].isDefault, true)

    const result = await admin.alterConfigs({
      validateOnly: false,
      resources: [{
        type: ConfigResourceTypes.TOPIC,
        name: topic,
        configEntries: [
          { name: 'retention.ms', value: '7200000' },
          { name: 'cleanup.policy', value: 'compact' },
        ],
      }],
    })
    assert.deepEqual(result.resources.map(r => [r.resourceName, r.errorCode]), [[topic, 0]])

    config = await topicConfig(topic, names)
    assert.equal(config['retention.ms'].configValue, '7200000')
    assert.equal(config['cleanup.policy'].configValue, 'compact')
    assert.equal(config['cleanup.policy'].isDefault, false)
    // AlterConfigs (unlike IncrementalAlterConfigs) sets the whole override set: what it does
    // not name goes back to the default.
    assert.equal(config['max.message.bytes'].isDefault, true)
    assert.equal(config['max.message.bytes'].configValue, '1048588')
  })

  it('alterConfigs with validateOnly changes nothing', async () => {
    const topic = uniqueTopic('admin-validate')
    await admin.createTopics({ topics: [{ topic, configEntries: [{ name: 'retention.ms', value: '3600000' }] }] })
    await admin.alterConfigs({
      validateOnly: true,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '1' }] }],
    })
    assert.equal((await topicConfig(topic, ['retention.ms']))['retention.ms'].configValue, '3600000')
  })

  it('alterConfigs with a bad value fails with INVALID_CONFIG and keeps the old value', async () => {
    const topic = uniqueTopic('admin-badvalue')
    await admin.createTopics({ topics: [{ topic, configEntries: [{ name: 'retention.ms', value: '3600000' }] }] })
    await rejectsWithType(
      admin.alterConfigs({
        validateOnly: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: 'soon' }] }],
      }),
      'INVALID_CONFIG'
    )
    assert.equal((await topicConfig(topic, ['retention.ms']))['retention.ms'].configValue, '3600000')
  })

  it('describeConfigs of an unknown topic fails with UNKNOWN_TOPIC_OR_PARTITION', async () => {
    await rejectsWithType(
      admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: uniqueTopic('admin-noconfig') }],
      }),
      'UNKNOWN_TOPIC_OR_PARTITION'
    )
  })
})

describe('offsets and records', () => {
  it('fetchTopicOffsets and fetchTopicOffsetsByTimestamp answer per partition', async () => {
    const topic = uniqueTopic('admin-offsets')
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 2 }] })
    // Timestamps near now, so no retention could ever treat them as expired.
    const base = Date.now() - 60_000
    await producer.send({
      topic,
      acks: -1,
      messages: [0, 1, 2, 3, 4].map(i => ({ partition: 0, value: `r${i}`, timestamp: String(base + i * 1000) })),
    })

    const offsets = (await admin.fetchTopicOffsets(topic)).sort((a, b) => a.partition - b.partition)
    assert.deepEqual(offsets.map(o => [o.partition, o.low, o.high, o.offset]), [[0, '0', '5', '5'], [1, '0', '0', '0']])

    const at = async ts =>
      (await admin.fetchTopicOffsetsByTimestamp(topic, ts))
        .sort((a, b) => a.partition - b.partition)
        .map(o => [o.partition, o.offset])
    // The first record at or after the timestamp; kafkajs shows "none" as the high watermark.
    assert.deepEqual(await at(base), [[0, '0'], [1, '0']])
    assert.deepEqual(await at(base + 2000), [[0, '2'], [1, '0']])
    assert.deepEqual(await at(base + 2500), [[0, '3'], [1, '0']])
    assert.deepEqual(await at(base + 4000), [[0, '4'], [1, '0']])
    assert.deepEqual(await at(base + 4001), [[0, '5'], [1, '0']])
  })

  it('fetchTopicOffsets of an unknown topic fails with UNKNOWN_TOPIC_OR_PARTITION', async () => {
    await rejectsWithType(admin.fetchTopicOffsets(uniqueTopic('admin-nooffsets')), 'UNKNOWN_TOPIC_OR_PARTITION')
  })

  it('deleteTopicRecords moves the low watermark, and the deleted records are gone', async () => {
    const topic = uniqueTopic('admin-delrecords')
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 2 }] })
    await producer.send({
      topic,
      acks: -1,
      messages: [
        ...[0, 1, 2, 3, 4, 5].map(i => ({ partition: 0, value: `p0-${i}` })),
        ...[0, 1, 2].map(i => ({ partition: 1, value: `p1-${i}` })),
      ],
    })

    // kafkajs looks the partition leaders up in its metadata cache before it loads the topic:
    // on a topic this admin client has not looked at yet, deleteTopicRecords fails in the
    // client ("Could not find the leader for the partition"), with Apache Kafka too.
    await admin.fetchTopicOffsets(topic)
    await admin.deleteTopicRecords({
      topic,
      partitions: [{ partition: 0, offset: '4' }, { partition: 1, offset: '-1' }],
    })
    const offsets = (await admin.fetchTopicOffsets(topic)).sort((a, b) => a.partition - b.partition)
    assert.deepEqual(offsets.map(o => [o.partition, o.low, o.high]), [[0, '4', '6'], [1, '3', '3']])

    const records = await spateConsume(broker, topic)
    assert.deepEqual(
      records.map(r => [r.partition, r.offset, r.value.toString()]),
      [[0, 4, 'p0-4'], [0, 5, 'p0-5']]
    )
  })

  it('deleteTopicRecords past the high watermark fails with OFFSET_OUT_OF_RANGE', async () => {
    const topic = uniqueTopic('admin-delpast')
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1 }] })
    await producer.send({ topic, acks: -1, messages: [{ value: 'only' }] })
    await admin.fetchTopicOffsets(topic) // loads the topic into kafkajs's cache, see above
    await rejectsWithType(
      admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '5' }] }),
      'OFFSET_OUT_OF_RANGE'
    )
    const [o] = await admin.fetchTopicOffsets(topic)
    assert.deepEqual([o.low, o.high], ['0', '1'])
  })
})

describe('cluster', () => {
  it('describeCluster names the one broker at its Kafka address, as controller, with a cluster id', async () => {
    const cluster = await admin.describeCluster()
    const [host, port] = broker.kafkaAddr.split(':')
    assert.deepEqual(cluster.brokers, [{ nodeId: 1, host, port: Number(port) }])
    assert.equal(cluster.controller, 1)
    assert.equal(typeof cluster.clusterId, 'string')
    assert.ok(cluster.clusterId.length > 0)
  })

  it('a second admin client sees topics the first created (the broker, not a client cache, answers)', async () => {
    const topic = uniqueTopic('admin-shared')
    await admin.createTopics({ topics: [{ topic, numPartitions: 4 }] })
    const other = kafkaFor(broker, { clientId: 'kafkajs-admin-second' }).admin()
    await other.connect()
    try {
      const metadata = await other.fetchTopicMetadata({ topics: [topic] })
      assert.deepEqual(partitionIds(metadata, topic), [0, 1, 2, 3])
    } finally {
      await other.disconnect()
    }
  })
})
