//! The vectors of an index: chunks of the records of a topic, each with its vector, text,
//! metadata and source (topic, partition, offset, key), upserted and deleted by record key (a
//! record's chunks are replaced together), searched by a metric with a metadata filter applied
//! before the top k are chosen, within a namespace.
//!
//! Search here is exact (every vector of the namespace that passes the filter is scored): the
//! reference the approximate index is measured against, and what small indexes use.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::filter::Filter;

/// How vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Cosine similarity (higher is nearer).
    Cosine,
    /// Dot product (higher is nearer).
    Dot,
    /// Euclidean distance (lower is nearer).
    Euclidean,
}

impl Metric {
    /// Parses `cosine`, `dot` (`dotproduct`, `dot-product`) or `euclidean`.
    pub fn parse(name: &str) -> Result<Metric, String> {
        match name.to_ascii_lowercase().as_str() {
            "cosine" => Ok(Metric::Cosine),
            "dot" | "dotproduct" | "dot-product" | "dot_product" => Ok(Metric::Dot),
            "euclidean" | "l2" => Ok(Metric::Euclidean),
            other => Err(format!(
                "unknown metric `{other}` (cosine, dot or euclidean)"
            )),
        }
    }

    /// The score of `b` for query `a` (for cosine both are already unit length).
    pub fn score(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::Cosine | Metric::Dot => a.iter().zip(b).map(|(x, y)| x * y).sum(),
            Metric::Euclidean => a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>()
                .sqrt(),
        }
    }

    /// Whether score `a` is nearer than score `b`.
    pub fn nearer(self, a: f32, b: f32) -> bool {
        match self {
            Metric::Euclidean => a < b,
            _ => a > b,
        }
    }
}

/// Where a chunk came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
}

/// One chunk of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// `<record key>#<chunk number>`.
    pub id: String,
    /// The chunk's text.
    pub text: String,
    /// Its vector (unit length for cosine).
    pub vector: Vec<f32>,
    /// The record's metadata fields.
    pub metadata: Map<String, Json>,
    /// Where it came from.
    pub source: Source,
}

/// A record's chunks, as one upsert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// The record key.
    pub key: String,
    /// Its namespace ("" when none).
    pub namespace: String,
    /// Its chunks.
    pub chunks: Vec<Chunk>,
}

/// A search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit<'a> {
    /// Its score by the index's metric.
    pub score: f32,
    /// The record key.
    pub key: &'a str,
    /// The namespace.
    pub namespace: &'a str,
    /// The chunk.
    pub chunk: &'a Chunk,
}

/// The documents of one index.
#[derive(Debug)]
pub struct Store {
    dimensions: usize,
    metric: Metric,
    documents: HashMap<String, Document>,
    chunks: usize,
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

impl Store {
    /// An empty store of `dimensions`-long vectors compared by `metric`.
    pub fn new(dimensions: usize, metric: Metric) -> Store {
        Store {
            dimensions,
            metric,
            documents: HashMap::new(),
            chunks: 0,
        }
    }

    /// The vectors' length.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Documents held.
    pub fn documents(&self) -> usize {
        self.documents.len()
    }

    /// Chunks (vectors) held.
    pub fn chunks(&self) -> usize {
        self.chunks
    }

    /// The document with record key `key`.
    pub fn get(&self, key: &str) -> Option<&Document> {
        self.documents.get(key)
    }

    /// Replaces the document's chunks (all of them); the error names a vector of the wrong
    /// length.
    pub fn upsert(&mut self, mut document: Document) -> Result<(), String> {
        for chunk in &mut document.chunks {
            if chunk.vector.len() != self.dimensions {
                return Err(format!(
                    "`{}` has {} dimensions; the index has {}",
                    chunk.id,
                    chunk.vector.len(),
                    self.dimensions
                ));
            }
            if self.metric == Metric::Cosine {
                normalize(&mut chunk.vector);
            }
        }
        self.chunks += document.chunks.len();
        if let Some(old) = self.documents.insert(document.key.clone(), document) {
            self.chunks -= old.chunks.len();
        }
        Ok(())
    }

    /// Deletes the document with record key `key`; whether there was one.
    pub fn delete(&mut self, key: &str) -> bool {
        match self.documents.remove(key) {
            Some(old) => {
                self.chunks -= old.chunks.len();
                true
            }
            None => false,
        }
    }

    /// The `top_k` chunks nearest `query` in `namespace` among those passing `filter`,
    /// nearest first.
    pub fn search(
        &self,
        query: &[f32],
        top_k: usize,
        namespace: &str,
        filter: Option<&Filter>,
    ) -> Result<Vec<Hit<'_>>, String> {
        if query.len() != self.dimensions {
            return Err(format!(
                "the query vector has {} dimensions; the index has {}",
                query.len(),
                self.dimensions
            ));
        }
        let mut query = query.to_vec();
        if self.metric == Metric::Cosine {
            normalize(&mut query);
        }
        let mut hits: Vec<Hit<'_>> = Vec::new();
        for document in self.documents.values() {
            if document.namespace != namespace {
                continue;
            }
            for chunk in &document.chunks {
                if filter.is_some_and(|f| !f.matches(&chunk.metadata)) {
                    continue;
                }
                hits.push(Hit {
                    score: self.metric.score(&query, &chunk.vector),
                    key: &document.key,
                    namespace: &document.namespace,
                    chunk,
                });
            }
        }
        let metric = self.metric;
        hits.sort_by(|a, b| {
            if metric.nearer(a.score, b.score) {
                std::cmp::Ordering::Less
            } else if metric.nearer(b.score, a.score) {
                std::cmp::Ordering::Greater
            } else {
                a.chunk.id.cmp(&b.chunk.id)
            }
        });
        hits.truncate(top_k);
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(key: &str, namespace: &str, vectors: &[(Vec<f32>, Json)]) -> Document {
        Document {
            key: key.into(),
            namespace: namespace.into(),
            chunks: vectors
                .iter()
                .enumerate()
                .map(|(i, (v, m))| Chunk {
                    id: format!("{key}#{i}"),
                    text: format!("{key} chunk {i}"),
                    vector: v.clone(),
                    metadata: m.as_object().cloned().unwrap_or_default(),
                    source: Source {
                        topic: "t".into(),
                        partition: 0,
                        offset: 0,
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn upserts_replace_a_records_chunks_and_deletes_remove_them() {
        let mut store = Store::new(2, Metric::Cosine);
        store
            .upsert(doc(
                "a",
                "",
                &[(vec![1.0, 0.0], json!({})), (vec![0.0, 1.0], json!({}))],
            ))
            .expect("upsert");
        store
            .upsert(doc("b", "", &[(vec![1.0, 1.0], json!({}))]))
            .expect("upsert");
        assert_eq!((store.documents(), store.chunks()), (2, 3));
        store
            .upsert(doc("a", "", &[(vec![0.0, 2.0], json!({}))]))
            .expect("upsert");
        assert_eq!((store.documents(), store.chunks()), (2, 2));
        let hits = store.search(&[1.0, 0.0], 10, "", None).expect("search");
        let ids: Vec<&str> = hits.iter().map(|h| h.chunk.id.as_str()).collect();
        assert_eq!(ids, ["b#0", "a#0"]);
        assert!((hits[0].score - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert!(store.delete("b"));
        assert!(!store.delete("b"));
        assert_eq!((store.documents(), store.chunks()), (1, 1));
        let e = store
            .upsert(doc("c", "", &[(vec![1.0], json!({}))]))
            .expect_err("dims");
        assert!(e.contains("1 dimensions; the index has 2"), "{e}");
    }

    #[test]
    fn search_filters_before_the_top_k_within_a_namespace() {
        let mut store = Store::new(2, Metric::Euclidean);
        for i in 0..10 {
            let v = vec![i as f32, 0.0];
            store
                .upsert(doc(
                    &format!("k{i}"),
                    "",
                    &[(v, json!({"even": i % 2 == 0}))],
                ))
                .expect("upsert");
        }
        store
            .upsert(doc("other", "ns", &[(vec![0.0, 0.0], json!({}))]))
            .expect("upsert");
        let filter = Filter::parse(&json!({"even": false})).expect("filter");
        let hits = store
            .search(&[0.0, 0.0], 3, "", Some(&filter))
            .expect("search");
        let keys: Vec<&str> = hits.iter().map(|h| h.key).collect();
        assert_eq!(keys, ["k1", "k3", "k5"]);
        assert_eq!(hits[0].score, 1.0);
        let hits = store.search(&[0.0, 0.0], 3, "ns", None).expect("search");
        assert_eq!(hits.len(), 1);
        assert!(store.search(&[0.0], 3, "", None).is_err());
    }

    #[test]
    fn metrics_parse_by_their_common_names() {
        assert_eq!(Metric::parse("COSINE"), Ok(Metric::Cosine));
        assert_eq!(Metric::parse("dotproduct"), Ok(Metric::Dot));
        assert_eq!(Metric::parse("l2"), Ok(Metric::Euclidean));
        assert!(Metric::parse("hamming").is_err());
        assert_eq!(Metric::Dot.score(&[1.0, 2.0], &[3.0, 4.0]), 11.0);
    }
}
