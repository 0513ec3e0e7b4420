'use strict'
// The schema registry with the npm client people use with kafkajs,
// @kafkajs/confluent-schema-registry: it registers Avro, JSON Schema and Protobuf schemas on
// Spate's registry listener, encodes records in Confluent's wire format, kafkajs produces them
// to a Spate topic and consumes them back, and the client decodes them by fetching the
// writer's schema by id. An incompatible evolution is refused with the registry's 409. With
// `--http-auth basic`, the client's basic credentials are checked against SCRAM users.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const {
  SchemaRegistry,
  SchemaType,
  COMPATIBILITY,
} = require('@kafkajs/confluent-schema-registry')

const { startBroker, spateBinary } = require('./lib/broker')
const { kafkaFor, uniqueTopic } = require('./lib/clients')
const { waitUntil } = require('./lib/wait')

let broker
let kafka
let registry

before(async () => {
  broker = await startBroker()
  kafka = kafkaFor(broker, { clientId: 'kafkajs-registry-tests' })
  registry = new SchemaRegistry({ host: `http://${broker.registryAddr}` })
})

after(async () => {
  await broker?.stop()
})

// Produces the encoded values to a new topic and consumes them back with a consumer group.
async function roundTrip(prefix, values) {
  const topic = uniqueTopic(prefix)
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1 }] })
  await admin.disconnect()
  const producer = kafka.producer()
  await producer.connect()
  await producer.send({ topic, messages: values.map(value => ({ value })) })
  await producer.disconnect()

  const consumer = kafka.consumer({ groupId: uniqueTopic('registry-group') })
  const seen = []
  try {
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({ eachMessage: async ({ message }) => { seen.push(message.value) } })
    await waitUntil(() => seen.length >= values.length, { what: `${values.length} records`, timeoutMs: 30_000 })
  } finally {
    await consumer.disconnect()
  }
  return seen
}

describe('@kafkajs/confluent-schema-registry against Spate', () => {
  it('registers an Avro schema, encodes, produces, consumes and decodes', async () => {
    const subject = uniqueTopic('users-avro')
    const schema = JSON.stringify({
      type: 'record',
      name: 'User',
      namespace: 'people',
      fields: [
        { name: 'id', type: 'long' },
        { name: 'name', type: 'string' },
        { name: 'email', type: ['null', 'string'], default: null },
      ],
    })
    const { id } = await registry.register({ type: SchemaType.AVRO, schema }, { subject })
    assert.equal(await registry.getLatestSchemaId(subject), id)
    assert.equal(await registry.getRegistryId(subject, 1), id)

    const users = [
      { id: 1, name: 'Ada', email: 'ada@example.com' },
      { id: 2, name: 'Grace', email: null },
    ]
    const encoded = await Promise.all(users.map(user => registry.encode(id, user)))
    for (const buffer of encoded) {
      assert.equal(buffer[0], 0, 'magic byte')
      assert.equal(buffer.readInt32BE(1), id, 'schema id')
    }
    const consumed = await roundTrip('avro-topic', encoded)
    // A fresh client has no cached schemas: decode fetches the writer's schema by id.
    const fresh = new SchemaRegistry({ host: `http://${broker.registryAddr}` })
    const decoded = await Promise.all(consumed.map(buffer => fresh.decode(buffer)))
    assert.deepEqual(decoded.map(u => ({ ...u, id: Number(u.id) })), users)
  })

  it('refuses an incompatible Avro evolution with 409 and keeps the subject as it was', async () => {
    const subject = uniqueTopic('evolve-avro')
    const v1 = JSON.stringify({ type: 'record', name: 'E', fields: [{ name: 'a', type: 'int' }] })
    await registry.register({ type: SchemaType.AVRO, schema: v1 }, { subject, compatibility: COMPATIBILITY.BACKWARD })
    const v2 = JSON.stringify({
      type: 'record',
      name: 'E',
      fields: [{ name: 'a', type: 'int' }, { name: 'b', type: 'string' }],
    })
    await assert.rejects(
      registry.register({ type: SchemaType.AVRO, schema: v2 }, { subject }),
      err => {
        assert.equal(err.status, 409, `status of ${err}`)
        assert.match(err.message, /b/)
        return true
      }
    )
    const v2ok = JSON.stringify({
      type: 'record',
      name: 'E',
      fields: [{ name: 'a', type: 'int' }, { name: 'b', type: 'string', default: '' }],
    })
    const { id } = await registry.register({ type: SchemaType.AVRO, schema: v2ok }, { subject })
    assert.equal(await registry.getRegistryId(subject, 2), id)
  })

  it('registers a JSON Schema and round-trips records through a topic', async () => {
    const subject = uniqueTopic('orders-json')
    const schema = JSON.stringify({
      $schema: 'http://json-schema.org/draft-07/schema#',
      type: 'object',
      properties: { id: { type: 'integer' }, item: { type: 'string' } },
      required: ['id', 'item'],
    })
    const { id } = await registry.register({ type: SchemaType.JSON, schema }, { subject })
    const orders = [{ id: 1, item: 'tea' }, { id: 2, item: 'cake' }]
    const encoded = await Promise.all(orders.map(order => registry.encode(id, order)))
    const consumed = await roundTrip('json-topic', encoded)
    const fresh = new SchemaRegistry({ host: `http://${broker.registryAddr}` })
    assert.deepEqual(await Promise.all(consumed.map(buffer => fresh.decode(buffer))), orders)
  })

  it('registers a Protobuf schema and round-trips records through a topic', async () => {
    const subject = uniqueTopic('orders-proto')
    const schema = `
      syntax = "proto3";
      package shop;
      message Order {
        int64 id = 1;
        string item = 2;
        repeated string tags = 3;
      }
    `
    const { id } = await registry.register({ type: SchemaType.PROTOBUF, schema }, { subject })
    const orders = [{ id: 7, item: 'tea', tags: ['hot'] }, { id: 8, item: 'cake', tags: [] }]
    const encoded = await Promise.all(orders.map(order => registry.encode(id, order)))
    const consumed = await roundTrip('proto-topic', encoded)
    const fresh = new SchemaRegistry({ host: `http://${broker.registryAddr}` })
    const decoded = await Promise.all(consumed.map(buffer => fresh.decode(buffer)))
    assert.deepEqual(
      decoded.map(o => ({ id: Number(o.id), item: o.item, tags: [...(o.tags ?? [])] })),
      orders
    )
  })
})

// With `--http-auth basic` the registry checks the same users as the Kafka listeners' SASL:
// the client's `auth` option sends HTTP basic credentials, checked against the user's SCRAM
// credential (created here with `spate user create`).
describe('@kafkajs/confluent-schema-registry with basic auth (http-auth=basic)', () => {
  let secured

  before(async () => {
    secured = await startBroker({ args: ['--http-auth', 'basic'] })
    const created = spawnSync(
      spateBinary(),
      ['user', 'create', 'alice', '--password-stdin', '--brokers', secured.kafkaAddr],
      { input: 'alice-secret\n', encoding: 'utf8', timeout: 60_000 }
    )
    assert.equal(created.status, 0, created.stderr)
  })

  after(async () => {
    await secured?.stop()
  })

  const client = auth => new SchemaRegistry({ host: `http://${secured.registryAddr}`, auth })

  it('registers and fetches with the right password, and is refused with 401 otherwise', async () => {
    const alice = client({ username: 'alice', password: 'alice-secret' })
    const subject = uniqueTopic('secured-avro')
    const schema = JSON.stringify({
      type: 'record',
      name: 'Secured',
      fields: [{ name: 'id', type: 'long' }],
    })
    const { id } = await alice.register({ type: SchemaType.AVRO, schema }, { subject })
    assert.equal(await alice.getLatestSchemaId(subject), id)
    const encoded = await alice.encode(id, { id: 42 })
    // A fresh client has no cached schema: decoding fetches it by id, authenticated.
    const decoded = await client({ username: 'alice', password: 'alice-secret' }).decode(encoded)
    assert.equal(Number(decoded.id), 42)

    for (const auth of [{ username: 'alice', password: 'wrong' }, { username: 'mallory', password: 'alice-secret' }, undefined]) {
      await assert.rejects(client(auth).getLatestSchemaId(subject), err => {
        assert.equal(err.status, 401, `${JSON.stringify(auth)}: ${err.message}`)
        assert.equal(err.unauthorized, true)
        assert.match(err.message, /Unauthorized/)
        return true
      })
    }
  })
})
