'use strict'
// kafkajs consumers for the tests: tuned to notice rebalances in a fraction of a second instead
// of kafkajs's defaults (heartbeat every 3 s, fetches that wait 5 s), with every GROUP_JOIN and
// CRASH event recorded so a test can assert on the assignment and fail on a crash kafkajs would
// otherwise hide by restarting.

const crypto = require('node:crypto')
const { AssignerProtocol } = require('kafkajs')

// sessionTimeout is the broker's group.min.session.timeout.ms (6000); members that leave send
// LeaveGroup, so no test waits for a session to expire.
const FAST_GROUP = {
  sessionTimeout: 6_000,
  rebalanceTimeout: 10_000,
  heartbeatInterval: 300,
  maxWaitTimeInMs: 100,
  retry: { initialRetryTime: 100, maxRetryTime: 1_000, retries: 5 },
}

function uniqueGroup(prefix) {
  return `${prefix}-${crypto.randomBytes(4).toString('hex')}`
}

// Connects, subscribes and runs a consumer. `run` is kafkajs's run() argument (eachMessage or
// eachBatch, autoCommit, ...). Resolves once run() did: after the first JoinGroup and SyncGroup.
async function startConsumer(kafka, { groupId, topics, fromBeginning = true, run, ...config }) {
  const consumer = kafka.consumer({ ...FAST_GROUP, groupId, ...config })
  const joins = []
  const crashes = []
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => joins.push({ at: Date.now(), ...payload }))
  consumer.on(consumer.events.CRASH, ({ payload }) => crashes.push(payload.error))
  await consumer.connect()
  await consumer.subscribe({ topics, fromBeginning })
  await consumer.run(run)
  return {
    consumer,
    joins,
    crashes,
    lastJoin: () => joins[joins.length - 1],
    memberId: () => joins[joins.length - 1]?.memberId,
  }
}

// The partitions of `topic` in a GROUP_JOIN's memberAssignment, sorted.
function assigned(join, topic) {
  return [...(join?.memberAssignment?.[topic] ?? [])].sort((a, b) => a - b)
}

// describeGroups members with their assignment decoded: { memberId, clientId, partitions }.
function decodeMembers(group, topic) {
  return group.members.map(m => {
    const assignment = AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
    return {
      memberId: m.memberId,
      clientId: m.clientId,
      partitions: [...(assignment?.assignment?.[topic] ?? [])].sort((a, b) => a - b),
    }
  })
}

// Fails with every crash a consumer reported (kafkajs restarts crashed consumers by default,
// which would hide a broker error behind a retry).
function assertNoCrashes(...members) {
  const crashes = members.flatMap(m => m.crashes)
  if (crashes.length > 0) {
    throw new Error(`kafkajs consumer crashed: ${crashes.map(e => `${e.name}: ${e.message}`).join('; ')}`)
  }
}

module.exports = { FAST_GROUP, uniqueGroup, startConsumer, assigned, decodeMembers, assertNoCrashes }
