//! The vector-search benchmark's Spate side (bench/ai/vectors.py runs it): builds a
//! [`spate_ai::store::Store`] from `base.f32` (n × d little-endian f32), then answers
//! `queries.f32` one at a time on one thread at several HNSW `ef` values, printing one JSON
//! line per setting with the queries per second and recall@10 against `truth.u32` (q × 10
//! ids, exact top 10 computed outside Rust). `cargo run --release -p spate-ai --example
//! ann_bench -- DIR DIMENSIONS [f32|f16|i8]`.

use std::time::Instant;

use spate_ai::ann::Quantization;
use spate_ai::store::{Chunk, Document, Metric, Source, Store};

fn floats(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::Path::new(args.get(1).expect("DIR"));
    let d: usize = args.get(2).expect("DIMENSIONS").parse().expect("a number");
    let quantization = match args.get(3).map_or("f32", String::as_str) {
        "f16" => Quantization::F16,
        "i8" => Quantization::I8,
        _ => Quantization::F32,
    };
    let base = floats(&dir.join("base.f32"));
    let queries = floats(&dir.join("queries.f32"));
    let truth: Vec<u32> = std::fs::read(dir.join("truth.u32"))
        .expect("truth.u32")
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let n = base.len() / d;
    let mut store = Store::new(d, Metric::Cosine, quantization).expect("a store");
    let started = Instant::now();
    for (i, v) in base.chunks_exact(d).enumerate() {
        let key = i.to_string();
        store
            .upsert(Document {
                key: key.clone(),
                namespace: String::new(),
                chunks: vec![Chunk {
                    id: key,
                    text: String::new(),
                    vector: v.to_vec(),
                    metadata: serde_json::Map::new(),
                    source: Source {
                        topic: "glove".into(),
                        partition: 0,
                        offset: i as i64,
                    },
                }],
            })
            .expect("upserted");
    }
    let build_s = started.elapsed().as_secs_f64();
    eprintln!("built {n} vectors in {build_s:.1} s");
    for ef in [64usize, 128, 256, 512, 1024] {
        store.set_expansion(ef);
        let started = Instant::now();
        let mut found = 0usize;
        let count = queries.len() / d;
        for (q, query) in queries.chunks_exact(d).enumerate() {
            let hits = store.search(query, 10, "", None).expect("searched");
            let want = &truth[q * 10..q * 10 + 10];
            found += hits
                .iter()
                .filter(|h| h.key.parse::<u32>().is_ok_and(|id| want.contains(&id)))
                .count();
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{{\"engine\": \"spate\", \"quantization\": \"{quantization:?}\", \"ef\": {ef}, \"qps\": {:.0}, \"recall\": {:.4}, \"build_s\": {build_s:.1}, \"n\": {n}}}",
            count as f64 / seconds,
            found as f64 / (count * 10) as f64
        );
    }
}
