/*
 * txn_perf: transactional produce throughput against plain idempotent acks=all produce, with
 * librdkafka. Built by bench/build-client.sh against the same static librdkafka as
 * rdkafka_performance; driven by bench/groups.sh and bench/registry.sh. What it measures and
 * why: BENCHMARKS.md.
 *
 *   txn_perf -b HOST:PORT -t TOPIC [-p PARTITION] [-n RECORDS] [-s BYTES] [-k PER_TXN]
 *            [-i 0|1] [-T TRANSACTIONAL_ID] [-V SCHEMA_ID] [-X key=value]...
 *
 *   -k 0   (default) no transactions: produce all records, then flush
 *   -k K   transactions of K records: init_transactions once, then begin, produce K, commit
 *   -i 1   (default) enable.idempotence=true; -i 0 turns it off (only without -k)
 *   -V ID  each value in the schema registry's wire format, as Confluent's serializers write
 *          it: magic byte 0, the schema id ID as a big-endian 32-bit integer, then an Avro
 *          `bytes` datum (zigzag varint length, then filler) making up the -s size exactly, so
 *          that it decodes against the Avro schema "bytes" registered as ID. Sizes with no
 *          exact fit (such as 70, where the length prefix grows from 1 to 2 bytes) are refused.
 *
 * Every producer uses acks=all. One warm-up record is produced and acknowledged first (in a
 * transaction of its own when transactional) and not counted. The clock starts at the first
 * produce() after it (init_transactions is timed separately) and stops when the last record is
 * acknowledged (flush or the last commit_transaction). Prints one line of key=value pairs, e.g.
 *
 *   mode=txn per_txn=10000 idempotence=1 records=1000000 size=1024 bytes=1024000000
 *   delivered=1000000 failed=0 txns=100 init_ms=503.6 elapsed_ms=3161.5 msgs_s=316308
 *   mb_s=323.9 commit_ms_mean=21.40 commit_ms_p50=21.01 commit_ms_max=42.54 commit_share=0.677
 *
 * commit_ms is the time blocked in commit_transaction(): the flush of the transaction's records
 * still in flight, then EndTxn. commit_share is its sum over elapsed_ms.
 *
 * MB = 10^6 bytes of record payload. Exit code 0 when every record was delivered, 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rdkafka.h"

static long long delivered;
static long long failed;
static char first_error[512];

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what, const char *detail) {
    fprintf(stderr, "txn_perf: %s: %s\n", what, detail);
    exit(2);
}

static void die_error(const char *what, rd_kafka_error_t *error) {
    fprintf(stderr, "txn_perf: %s: %s (%s)\n", what, rd_kafka_error_string(error),
            rd_kafka_error_name(error));
    exit(2);
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err) {
        if (failed++ == 0) {
            /* One key=value token on the summary line: no spaces. */
            snprintf(first_error, sizeof(first_error), "%s", rd_kafka_err2name(m->err));
            for (char *c = first_error; *c; c++)
                if (*c == ' ') *c = '_';
        }
    } else {
        delivered++;
    }
}

static void set(rd_kafka_conf_t *conf, const char *key, const char *value) {
    char err[512];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK)
        die(key, err);
}

/* Bytes of the zigzag varint Avro writes for the long n >= 0. */
static size_t avro_long_len(long long n) {
    unsigned long long z = (unsigned long long)n << 1;
    size_t len = 1;
    while (z >= 0x80) {
        z >>= 7;
        len++;
    }
    return len;
}

/* Fills payload[0..size) with Confluent's wire format around an Avro `bytes` datum; returns 0
 * when no datum length fits size exactly. */
static int fill_wire_format(char *payload, size_t size, long schema_id) {
    if (size < 6) return 0;
    long long len = (long long)size - 6;
    while (len >= 0 && 5 + avro_long_len(len) + (size_t)len > size) len--;
    if (len < 0 || 5 + avro_long_len(len) + (size_t)len != size) return 0;
    unsigned char *p = (unsigned char *)payload;
    uint32_t id = (uint32_t)schema_id;
    p[0] = 0;
    p[1] = (unsigned char)(id >> 24);
    p[2] = (unsigned char)(id >> 16);
    p[3] = (unsigned char)(id >> 8);
    p[4] = (unsigned char)id;
    size_t at = 5;
    for (unsigned long long z = (unsigned long long)len << 1;; z >>= 7) {
        if (z < 0x80) {
            p[at++] = (unsigned char)z;
            break;
        }
        p[at++] = (unsigned char)(z & 0x7f) | 0x80;
    }
    for (size_t i = 0; at < size; i++) p[at++] = (unsigned char)('a' + i % 26);
    return 1;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* produce() one record, serving delivery reports while the local queue is full. */
static void produce_one(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition, void *payload,
                        size_t size) {
    for (;;) {
        if (rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, payload, size, NULL, 0, NULL) ==
            0)
            return;
        rd_kafka_resp_err_t err = rd_kafka_last_error();
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) die("produce", rd_kafka_err2str(err));
        rd_kafka_poll(rk, 10);
    }
}

int main(int argc, char **argv) {
    const char *brokers = NULL, *topic = NULL, *txn_id = NULL;
    int32_t partition = 0;
    long long records = 1000000, per_txn = 0;
    size_t size = 1024;
    int idempotence = 1;
    long schema_id = -1;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[512];
    int opt;

    /* bench/run.sh's batching: 1,000,000-byte batches (librdkafka's largest request) and a 5 ms
     * linger. Unlike run.sh, librdkafka's default local queue limits (100,000 messages, 1 GiB):
     * with run.sh's deep queue a plain run queues all of its records at once, and faulting that
     * much fresh memory in (about 0.8 s per GiB on the benchmark VM) slowed the plain runs by
     * 10-15%, while a transactional run only ever queues one transaction. -X overrides any. */
    set(conf, "acks", "all");
    set(conf, "linger.ms", "5");
    set(conf, "batch.size", "1000000");

    while ((opt = getopt(argc, argv, "b:t:p:n:s:k:i:T:V:X:")) != -1) {
        switch (opt) {
        case 'b': brokers = optarg; break;
        case 't': topic = optarg; break;
        case 'p': partition = atoi(optarg); break;
        case 'n': records = atoll(optarg); break;
        case 's': size = (size_t)atoll(optarg); break;
        case 'k': per_txn = atoll(optarg); break;
        case 'i': idempotence = atoi(optarg); break;
        case 'T': txn_id = optarg; break;
        case 'V': schema_id = atol(optarg); break;
        case 'X': {
            char *eq = strchr(optarg, '=');
            if (!eq) die("-X", "expected key=value");
            *eq = '\0';
            set(conf, optarg, eq + 1);
            break;
        }
        default:
            fprintf(stderr, "usage: %s -b HOST:PORT -t TOPIC [-p PARTITION] [-n RECORDS] "
                            "[-s BYTES] [-k PER_TXN] [-i 0|1] [-T TRANSACTIONAL_ID] "
                            "[-V SCHEMA_ID] [-X key=value]...\n", argv[0]);
            return 2;
        }
    }
    if (!brokers || !topic) die("usage", "-b and -t are required");
    if (per_txn < 0 || records <= 0) die("usage", "-k must be >= 0 and -n > 0");
    if (per_txn > 0 && !idempotence) die("usage", "transactions need idempotence");
    if (schema_id != -1 && (schema_id < 0 || schema_id > 0x7fffffffL))
        die("usage", "-V takes a schema id from 0 to 2147483647");

    set(conf, "bootstrap.servers", brokers);
    set(conf, "enable.idempotence", idempotence ? "true" : "false");
    char default_txn_id[128];
    if (per_txn > 0) {
        if (!txn_id) {
            snprintf(default_txn_id, sizeof(default_txn_id), "txn-perf-%s-%d", topic, (int)getpid());
            txn_id = default_txn_id;
        }
        set(conf, "transactional.id", txn_id);
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);

    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) die("rd_kafka_new", err);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);

    char *payload = malloc(size);
    if (!payload) die("malloc", strerror(errno));
    if (schema_id >= 0) {
        if (!fill_wire_format(payload, size, schema_id))
            die("-V", "no Avro bytes datum fills -s exactly with the 5-byte header; pick another size");
    } else {
        for (size_t i = 0; i < size; i++) payload[i] = (char)('a' + i % 26);
    }

    double init_ms = 0;
    if (per_txn > 0) {
        double t = now_ms();
        rd_kafka_error_t *error = rd_kafka_init_transactions(rk, 60000);
        if (error) die_error("init_transactions", error);
        init_ms = now_ms() - t;
    }

    /* Warm-up, not timed: one record, acknowledged, so that connecting, metadata and the
     * producer id (which librdkafka's idempotent producer requests on a 500 ms timer) are
     * behind us in both modes. In a transaction when transactional. */
    {
        rd_kafka_error_t *error = per_txn > 0 ? rd_kafka_begin_transaction(rk) : NULL;
        if (error) die_error("begin_transaction", error);
        produce_one(rk, rkt, partition, payload, size);
        if (per_txn > 0) {
            error = rd_kafka_commit_transaction(rk, 60000);
            if (error) die_error("commit_transaction", error);
        } else if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            die("flush", "warm-up record not delivered within 60 s");
        }
        rd_kafka_poll(rk, 0);
        if (delivered != 1 || failed != 0) die("warm-up", first_error);
        delivered = 0;
    }

    long long txns = per_txn > 0 ? (records + per_txn - 1) / per_txn : 0;
    double *commit_ms = txns ? calloc((size_t)txns, sizeof(double)) : NULL;
    double t0 = now_ms();
    if (per_txn == 0) {
        for (long long i = 0; i < records; i++) {
            produce_one(rk, rkt, partition, payload, size);
            if ((i & 1023) == 0) rd_kafka_poll(rk, 0);
        }
        rd_kafka_resp_err_t flush_err;
        while ((flush_err = rd_kafka_flush(rk, 60000)) == RD_KAFKA_RESP_ERR__TIMED_OUT)
            fprintf(stderr, "txn_perf: still flushing, %d in queue\n", rd_kafka_outq_len(rk));
    } else {
        long long left = records;
        for (long long t = 0; t < txns; t++) {
            rd_kafka_error_t *error = rd_kafka_begin_transaction(rk);
            if (error) die_error("begin_transaction", error);
            long long n = left < per_txn ? left : per_txn;
            for (long long i = 0; i < n; i++) {
                produce_one(rk, rkt, partition, payload, size);
                if ((i & 1023) == 0) rd_kafka_poll(rk, 0);
            }
            left -= n;
            /* commit_transaction flushes the transaction's records first: the time is that
             * flush plus EndTxn (markers written and synced by the broker). */
            double c = now_ms();
            error = rd_kafka_commit_transaction(rk, 60000);
            if (error) die_error("commit_transaction", error);
            commit_ms[t] = now_ms() - c;
        }
    }
    double elapsed_ms = now_ms() - t0;
    rd_kafka_poll(rk, 0);

    double total_bytes = (double)delivered * (double)size;
    printf("mode=%s per_txn=%lld idempotence=%d records=%lld size=%zu bytes=%.0f delivered=%lld "
           "failed=%lld txns=%lld init_ms=%.1f elapsed_ms=%.1f msgs_s=%.0f mb_s=%.1f",
           per_txn > 0 ? "txn" : "plain", per_txn, idempotence, records, size, total_bytes,
           delivered, failed, txns, init_ms, elapsed_ms, delivered * 1000.0 / elapsed_ms,
           total_bytes / elapsed_ms / 1000.0);
    if (schema_id >= 0) printf(" schema_id=%ld", schema_id);
    if (txns) {
        qsort(commit_ms, (size_t)txns, sizeof(double), cmp_double);
        double sum = 0;
        for (long long t = 0; t < txns; t++) sum += commit_ms[t];
        printf(" commit_ms_mean=%.2f commit_ms_p50=%.2f commit_ms_max=%.2f commit_share=%.3f",
               sum / txns, commit_ms[txns / 2], commit_ms[txns - 1], sum / elapsed_ms);
    }
    if (failed) printf(" first_error=%s", first_error);
    printf("\n");
    fflush(stdout);

    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    free(payload);
    free(commit_ms);
    return delivered == records && failed == 0 ? 0 : 1;
}
