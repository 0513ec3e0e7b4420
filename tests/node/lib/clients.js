'use strict'
// kafkajs clients for the tests: quiet by default (KAFKAJS_LOG_LEVEL=DEBUG|INFO|WARN|ERROR to
// see kafkajs's own log), short retries so an error surfaces in seconds, unique topic names.

const crypto = require('node:crypto')
const { Kafka, logLevel, CompressionTypes, CompressionCodecs } = require('kafkajs')
const LZ4Codec = require('kafkajs-lz4')
const SnappyCodec = require('kafkajs-snappy')

// kafkajs ships gzip only; snappy and lz4 come from the codec packages. zstd is missing:
// @kafkajs/zstd needs cppzst 2.0.6, which does not compile against Node 20's headers.
CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec

// The tests choose their partitioner; kafkajs's notice about the v2 default change is noise.
process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1'

function kafkaFor(broker, { clientId = 'spate-kafkajs-tests', retries = 3 } = {}) {
  const level = logLevel[(process.env.KAFKAJS_LOG_LEVEL || 'NOTHING').toUpperCase()]
  return new Kafka({
    clientId,
    brokers: [broker.kafkaAddr],
    logLevel: level ?? logLevel.NOTHING,
    connectionTimeout: 10_000,
    requestTimeout: 30_000,
    retry: { initialRetryTime: 100, maxRetryTime: 2_000, retries },
  })
}

function uniqueTopic(prefix) {
  return `${prefix}-${crypto.randomBytes(4).toString('hex')}`
}

module.exports = { kafkaFor, uniqueTopic }
