//! `client-choice BROKER TOPIC_PREFIX COUNT SIZE`: produces COUNT records of SIZE bytes to a
//! new one-partition topic with each client (acks=all), then consumes each topic back from the
//! start, and prints records/s and MB/s per step. Both clients batch up to 256 KiB and keep 5
//! requests in flight, so the comparison is of the clients, not of their defaults.
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, TopicPartitionList};

fn report(step: &str, count: u64, size: usize, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{step:<28} {count:>9} records in {secs:>6.2} s: {:>10.0} records/s {:>7.1} MB/s",
        count as f64 / secs,
        count as f64 * size as f64 / secs / 1e6
    );
}

fn rdkafka_produce(broker: &str, topic: &str, count: u64, size: usize) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.size", "262144")
        .set("max.in.flight", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let value = vec![b'x'; size];
    let started = Instant::now();
    for _ in 0..count {
        let mut record: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic).payload(&value[..]).partition(0);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    report("rdkafka produce", count, size, started);
}

fn rdkafka_consume(broker: &str, topic: &str, count: u64, size: usize) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", "client-choice")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, rdkafka::Offset::Beginning).unwrap();
    consumer.assign(&list).unwrap();
    let started = Instant::now();
    let mut seen = 0u64;
    while seen < count {
        if let Some(message) = consumer.poll(Duration::from_secs(5)) {
            let message = message.expect("message");
            assert_eq!(message.payload().map(<[u8]>::len), Some(size));
            seen += 1;
        }
    }
    report("rdkafka consume", count, size, started);
}

async fn spate_produce(broker: &str, topic: &str, count: u64, size: usize) {
    let client = spate_client::Client::connect(spate_client::ClientConfig::new(vec![broker.to_string()]))
        .await
        .expect("connect");
    let mut producer = spate_client::Producer::new(client, topic, spate_client::ProducerConfig::default())
        .await
        .expect("producer");
    let value = Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    for _ in 0..count {
        let record = spate_client::ProducerRecord {
            key: None,
            value: Some(value.clone()),
            headers: Vec::new(),
            timestamp_ms: 0,
        };
        producer.send(record, Some(0)).await.expect("send");
    }
    producer.flush().await;
    assert_eq!(producer.acked_records(), count);
    report("spate-client produce", count, size, started);
}

async fn spate_consume(broker: &str, topic: &str, count: u64, size: usize) {
    let client = spate_client::Client::connect(spate_client::ClientConfig::new(vec![broker.to_string()]))
        .await
        .expect("connect");
    let metadata = client.topic_metadata(topic, false).await.expect("metadata");
    let mut consumer = spate_client::Consumer::new(
        client,
        metadata,
        [(0, 0)].into_iter().collect(),
        spate_client::ConsumerConfig::default(),
    );
    let started = Instant::now();
    let mut seen = 0u64;
    while seen < count {
        let poll = consumer.poll().await.expect("poll");
        for partition in poll.partitions {
            for record in partition.records {
                assert_eq!(record.value.as_ref().map(Bytes::len), Some(size));
                seen += 1;
            }
        }
    }
    report("spate-client consume", count, size, started);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (broker, prefix) = (&args[1], &args[2]);
    let count: u64 = args[3].parse().unwrap();
    let size: usize = args[4].parse().unwrap();
    let (a, b) = (format!("{prefix}-rdkafka"), format!("{prefix}-spate"));
    let (broker2, a2) = (broker.clone(), a.clone());
    tokio::task::spawn_blocking(move || rdkafka_produce(&broker2, &a2, count, size)).await.unwrap();
    spate_produce(broker, &b, count, size).await;
    let (broker2, a2) = (broker.clone(), a.clone());
    tokio::task::spawn_blocking(move || rdkafka_consume(&broker2, &a2, count, size)).await.unwrap();
    spate_consume(broker, &b, count, size).await;
}
