// kafkajs 2.2.4 driven by tests/kafka_wire/clients/test_kafkajs.py: `node kjs.js` reads one
// JSON command on stdin and prints one JSON result on stdout (logs go to stderr).
// Bytes travel as base64 strings; null stays null. Commands:
//   produce  {brokers, topic, records: [{key, value, headers: [[k, v]], partition?}],
//             compression?, idempotent?, acks?, chunk?}
//            → {acks: [[partition, offset]]}  (per record, in order)
//   consume  {brokers, topic, groupId, count, timeoutMs?, seek?: [[partition, offset]]}
//            → {records: [{partition, offset, key, value, headers, timestamp}]}
//   offsets  {brokers, topic, timestamps?: [ms]}
//            → {latest: [{partition, offset, high, low}], byTime: {ms: [{partition, offset}]}}
'use strict'

const { Kafka, CompressionTypes, CompressionCodecs, Partitioners, logLevel } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const lz4 = require('lz4js')
const { ZstdCodec } = require('zstd-codec')

// kafkajs ships gzip only; snappy, lz4 and zstd are plugins (kafkajs-snappy; pure-JS lz4js
// and zstd-codec wrapped here, so nothing native needs building).
CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  async compress (encoder) { return Buffer.from(lz4.compress(encoder.buffer)) },
  async decompress (buffer) { return Buffer.from(lz4.decompress(buffer)) }
})
let zstd = null
const zstdReady = new Promise(resolve => ZstdCodec.run(z => { zstd = z; resolve() }))
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  async compress (encoder) {
    await zstdReady
    return Buffer.from(new zstd.Simple().compress(encoder.buffer))
  },
  async decompress (buffer) {
    await zstdReady
    return Buffer.from(new zstd.Streaming().decompress(buffer))
  }
})
const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD
}

const b = s => (s === null || s === undefined ? null : Buffer.from(s, 'base64'))
const s64 = buf => (buf === null || buf === undefined ? null : Buffer.from(buf).toString('base64'))

function client (brokers) {
  return new Kafka({
    clientId: 'kafkajs',
    brokers,
    logLevel: logLevel.WARN,
    retry: { initialRetryTime: 50, retries: 8 },
    logCreator: () => ({ namespace, level, log }) => {
      process.stderr.write(`[kafkajs ${namespace}] ${JSON.stringify(log)}\n`)
    }
  })
}

// headers [[k, v], ...] → kafkajs' object form; repeated keys become arrays (kafkajs keeps
// the values of one key together, so the tests use repeated keys only next to each other).
function toHeaders (pairs) {
  const out = {}
  for (const [k, v] of pairs) {
    const value = b(v)
    if (k in out) out[k] = [].concat(out[k], [value])
    else out[k] = value
  }
  return out
}

function fromHeaders (headers) {
  const out = []
  for (const [k, v] of Object.entries(headers || {})) {
    for (const value of Array.isArray(v) ? v : [v]) out.push([k, s64(value)])
  }
  return out
}

async function produce (cmd) {
  const kafka = client(cmd.brokers)
  // kafkajs' DefaultPartitioner places each record; the wrapper notes where, so every
  // record's offset follows from the per-partition base offsets of the response
  const placed = new Map()
  const producer = kafka.producer({
    idempotent: !!cmd.idempotent,
    maxInFlightRequests: cmd.idempotent ? 1 : undefined,
    allowAutoTopicCreation: true,
    createPartitioner: () => {
      const inner = Partitioners.DefaultPartitioner()
      return args => {
        const partition = inner(args)
        placed.set(args.message, partition)
        return partition
      }
    }
  })
  await producer.connect()
  const messages = cmd.records.map(r => {
    const message = { key: b(r.key), value: b(r.value), headers: toHeaders(r.headers || []) }
    if (r.timestamp !== undefined) message.timestamp = String(r.timestamp)
    if (r.partition !== undefined) message.partition = r.partition
    return message
  })
  const acks = []
  const chunk = cmd.chunk || 500
  for (let start = 0; start < messages.length; start += chunk) {
    const slice = messages.slice(start, start + chunk)
    const result = await producer.send({
      topic: cmd.topic,
      messages: slice,
      acks: cmd.acks === undefined ? -1 : cmd.acks,
      compression: CODECS[cmd.compression || 'none']
    })
    const base = {}
    for (const r of result) base[r.partition] = Number(r.baseOffset)
    for (const m of slice) {
      const partition = m.partition !== undefined ? m.partition : placed.get(m)
      acks.push([partition, base[partition]++])
    }
  }
  await producer.disconnect()
  return { acks }
}

async function consume (cmd) {
  const kafka = client(cmd.brokers)
  const consumer = kafka.consumer({
    groupId: cmd.groupId,
    sessionTimeout: 10000,
    heartbeatInterval: 500,
    rebalanceTimeout: 10000,
    maxWaitTimeInMs: 200,
    allowAutoTopicCreation: false
  })
  const records = []
  await consumer.connect()
  await consumer.subscribe({ topic: cmd.topic, fromBeginning: true })
  let done
  const finished = new Promise(resolve => { done = resolve })
  await consumer.run({
    autoCommit: true,
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        records.push({
          partition: batch.partition,
          offset: Number(m.offset),
          key: s64(m.key),
          value: s64(m.value),
          headers: fromHeaders(m.headers),
          timestamp: Number(m.timestamp)
        })
      }
      if (records.length >= cmd.count) done()
    }
  })
  for (const [partition, offset] of cmd.seek || []) {
    consumer.seek({ topic: cmd.topic, partition, offset: String(offset) })
  }
  const timer = setTimeout(done, cmd.timeoutMs || 30000)
  await finished
  clearTimeout(timer)
  await consumer.disconnect()
  return { records }
}

async function offsets (cmd) {
  const admin = client(cmd.brokers).admin()
  await admin.connect()
  const latest = await admin.fetchTopicOffsets(cmd.topic)
  const byTime = {}
  for (const ts of cmd.timestamps || []) {
    byTime[ts] = await admin.fetchTopicOffsetsByTimestamp(cmd.topic, ts)
  }
  await admin.disconnect()
  return { latest, byTime }
}

async function main () {
  const chunks = []
  for await (const c of process.stdin) chunks.push(c)
  const cmd = JSON.parse(Buffer.concat(chunks).toString())
  const run = { produce, consume, offsets }[cmd.command]
  const result = await run(cmd)
  // exit only once stdout is flushed (a pipe is asynchronous in node)
  await new Promise(resolve => process.stdout.write(JSON.stringify(result) + '\n', resolve))
}

main().then(() => process.exit(0), e => {
  process.stderr.write(`kjs.js: ${e && e.stack ? e.stack : e}\n`)
  process.exit(1)
})
